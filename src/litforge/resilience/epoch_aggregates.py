"""The running sums behind ``self.log(..., on_epoch=True)`` in every checkpoint, so that a run resumed in
the middle of an epoch ends that epoch with the same ``train_loss_epoch`` as the unbroken run (Lightning
starts the sums again at a resume: the epoch's value covered only the batches after it).

litforge fit --resume auto          # litforge adds ``EpochAggregates`` to every fit
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from litforge._compat.lightning import add_to_aggregate, aggregate_state, epoch_aggregates


class EpochAggregates(Callback):
    """Saves each epoch aggregate of the training loop (a mean's sum and batch count, a max, a min, a sum)
    with the epoch and the batch it runs up to; restored, it adds them back as the same epoch goes on, one
    batch after the checkpoint. A checkpoint from an epoch's end starts a new epoch: nothing is added.
    Exact: the resumed sum is ``(batch k+1) + (batches up to k)``, the unbroken one the same two terms in
    the other order. Under DDP each rank's sums differ and the checkpoint holds rank 0's, so they are
    restored only in single-process runs."""

    def __init__(self) -> None:
        self._next_batch: int | None = None  # the batch index the aggregates run up to (exclusive)
        self._pending: dict[str, Any] | None = None
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._next_batch = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._pending is not None:
            self._restore(trainer, batch_idx)
        self._next_batch = batch_idx + 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending = None

    def state_dict(self) -> dict[str, Any]:
        trainer = self._trainer
        if trainer is None or self._next_batch is None:
            return {}
        sums = {key: aggregate_state(metric) for key, metric in epoch_aggregates(trainer).items()}
        return {"epoch": trainer.current_epoch, "next_batch": self._next_batch, "sums": sums}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = {**state_dict, "sums": dict(state_dict["sums"])} if state_dict else None

    def _restore(self, trainer: L.Trainer, batch_idx: int) -> None:
        pending = self._pending
        assert pending is not None
        if not pending.get("continues"):  # the first batch after the restore: is it the next one?
            same_place = trainer.current_epoch == pending["epoch"] and batch_idx == pending["next_batch"]
            if not same_place or trainer.world_size > 1:
                self._pending = None
                return
            pending["continues"] = True
        live = epoch_aggregates(trainer)
        for key in [k for k in pending["sums"] if k in live]:  # a key first logged later waits for it
            add_to_aggregate(live[key], pending["sums"].pop(key))
        if not pending["sums"]:
            self._pending = None
