"""Keep a decision to stop (``EarlyStopping``, or any ``trainer.should_stop = True``) across a resume.

litforge fit --run my-run --resume auto     # litforge adds ``StopRequest`` to every fit
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from litforge.resilience.loader_state import resumes_at_epoch_end


class StopRequest(Callback):
    """Saves ``trainer.should_stop`` in every checkpoint and sets it again when training resumes.

    Lightning saves ``EarlyStopping``'s counters but not the stop it decided, which takes effect only
    after the checkpoints of that moment are written: a run killed after its last checkpoint (before it
    is marked finished) would train another epoch until ``EarlyStopping`` decides again. With the flag
    restored, the resumed run stops where the uninterrupted one stopped: at once when the checkpoint is
    at an epoch boundary, after the epoch-end hooks when it was written by a validation after the
    epoch's last batch. (A checkpoint written by a validation in the middle of an epoch that decided to
    stop is newer than the epoch-end one only for the instant between the two saves; resumed from it,
    the run stops at once with the same weights, but does not run that epoch's end hooks again.)
    """

    def __init__(self) -> None:
        self._trainer: L.Trainer | None = None
        self._restore = False
        self._saved_epoch = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        return {"should_stop": bool(self._trainer is not None and self._trainer.should_stop)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restore = bool(state_dict.get("should_stop"))

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._saved_epoch = int(checkpoint.get("epoch", -1))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not resumes_at_epoch_end(trainer, self._saved_epoch):
            self._stop_if_restored(trainer)  # else after that epoch's end hooks, as the uninterrupted run

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_if_restored(trainer)

    def _stop_if_restored(self, trainer: L.Trainer) -> None:
        if self._restore:
            self._restore = False
            trainer.should_stop = True
