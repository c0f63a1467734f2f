"""Test-only callbacks loaded by subprocess runs (``--trainer.callbacks+=crash_helpers.CrashOnce``)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback


class CrashOnce(Callback):
    """Rank ``rank`` dies with ``os._exit(1)`` at global step ``step`` on torchrun's first attempt only;
    every attempt records (rank 0) the step it started training from in ``record``."""

    def __init__(self, step: int, record: str, rank: int = 1) -> None:
        self.step, self.record, self.rank = step, Path(record), rank

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank == 0:
            attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
            lines = self.record.read_text().splitlines() if self.record.exists() else []
            lines.append(json.dumps({"attempt": attempt, "start_step": trainer.global_step}))
            self.record.write_text("\n".join(lines) + "\n")

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if first_attempt and trainer.global_rank == self.rank and trainer.global_step == self.step:
            os._exit(1)


class KillAt(Callback):
    """The process SIGKILLs itself (``kill -9``: no handler, no cleanup) when training reaches global
    step ``step``, before that step's batch runs."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
