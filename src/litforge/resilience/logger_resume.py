"""What a resumed fit's loggers need: each step logged once, and nothing logged before a checkpoint lost.

litforge fit --run my-run --resume auto    # metrics.csv and TensorBoard continue the killed run's curves

A run killed after checkpoint S had logged some steps past S, which the resumed run trains and logs
again. ``KeepEarlierMetrics`` (a fit callback litforge adds) makes both default loggers show each step
once when training starts from checkpoint S:

- ``metrics.csv`` (``ResumableCSVLogger``) keeps the rows before step S and drops the later ones;
- TensorBoard's writer is reopened with ``purge_step=S``, which tells TensorBoard to hide the earlier
  run's events of step S and later (the event files themselves are append-only).

And it flushes TensorBoard's events (its writer buffers up to two minutes of them) when a checkpoint is
saved and again at the next batch (Lightning logs step S-1 after checkpoint S is written), so a kill after
checkpoint S loses nothing logged before S, save in that instant, as for ``metrics.csv``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from litforge._compat.lightning import in_epoch_end, logged_step, logger_experiment, reopen_tensorboard_at
from litforge.resilience.resumable_csv import ResumableCSVLogger


class KeepEarlierMetrics(L.Callback):
    """Trims the earlier run's metrics to the steps before the checkpoint training resumes from, and
    flushes TensorBoard at each checkpoint and at the batch after it."""

    def __init__(self) -> None:
        self._flush_at_next_batch = False
        self._trainer: L.Trainer | None = None
        self._resumed_at: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        """The first step a run resumed from this checkpoint logs: the loggers' step (not ``global_step``,
        which two optimizers advance twice per batch), plus the batch being finished when the checkpoint is
        written inside one (its step is logged after the hooks, and counted after that)."""
        if self._trainer is None:
            return {}
        return {"next_logged_step": logged_step(self._trainer) + (0 if in_epoch_end(self._trainer) else 1)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resumed_at = state_dict.get("next_logged_step")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        step = 0
        if trainer.ckpt_path is not None:  # a checkpoint of an earlier litforge says only its global_step
            step = self._resumed_at if self._resumed_at is not None else trainer.global_step
        for logger in trainer.loggers:
            if isinstance(logger, ResumableCSVLogger):
                logger.keep_rows_before(step)
            elif isinstance(logger, TensorBoardLogger) and step > 0:
                # Not at 0: a fresh run's hyperparameters, logged at step 0 before training, would go too.
                reopen_tensorboard_at(logger, step)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.is_global_zero:
            _flush_tensorboard(trainer)
            self._flush_at_next_batch = True

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._flush_at_next_batch:
            _flush_tensorboard(trainer)
            self._flush_at_next_batch = False


def _flush_tensorboard(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger) and (writer := logger_experiment(logger)) is not None:
            writer.flush()
