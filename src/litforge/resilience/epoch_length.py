"""A mid-epoch checkpoint resumes only into epochs of the same length.

A checkpoint taken after batch 5 of an epoch of 7 says "5 batches done"; resumed with another
``--data.batch_size`` (or another dataset), the epoch has another number of batches, and Lightning's fit loop
continues it at the wrong place: with fewer batches than were done it ends at once, without its validation.
So litforge records the epoch's length in each checkpoint and refuses, in one line (exit 2), a resume from
the middle of an epoch whose length has changed. Epoch-end checkpoints (``last.ckpt``) resume into any
length: the next epoch starts fresh.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L

from litforge.errors import UsageError

_KEY = "litforge_batches_per_epoch"


class SameEpochLength(L.Callback):
    """Save the training epoch's number of batches; refuse a mid-epoch resume into another number."""

    def __init__(self) -> None:
        self._saved: tuple[int, int] | None = None  # (batches per epoch, batches done) of the restored state

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if math.isfinite(trainer.num_training_batches):
            checkpoint[_KEY] = int(trainer.num_training_batches)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        progress: Any = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {})
        done = progress.get("current", {}).get("ready") if isinstance(progress, dict) else None
        if isinstance(checkpoint.get(_KEY), int) and isinstance(done, int):
            self._saved = (checkpoint[_KEY], done)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        saved, self._saved = self._saved, None
        if saved is None or not math.isfinite(trainer.num_training_batches):
            return
        batches, done = saved
        now = int(trainer.num_training_batches)
        if 0 < done < batches and now != batches:
            last = Path(str(trainer.ckpt_path)).with_name("last.ckpt")
            instead = str(last) if trainer.ckpt_path and last.is_file() else "<run>/checkpoints/last.ckpt"
            raise UsageError(
                f"the checkpoint stopped after batch {done} of an epoch of {batches} batches, and the training "
                f"data now gives {now} per epoch (another --data.batch_size or dataset?): that epoch cannot "
                "continue where it stopped. Resume with the run's data settings, or from an epoch-end "
                f"checkpoint such as {instead}, after which any batch size works"
            )
