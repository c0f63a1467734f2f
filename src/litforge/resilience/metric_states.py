"""The running states of the module's torchmetrics ``Metric``s in every checkpoint, so that a run resumed in
the middle of an epoch logs the same epoch value of ``self.log("train_acc", self.train_acc)`` as the unbroken
run. A ``Metric`` keeps its sums outside ``state_dict()`` (its states are not persistent), so after a resume
its ``compute()`` covered only the batches after the checkpoint.

litforge fit --resume auto          # litforge adds ``MetricStates`` to every fit
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from litforge._compat.lightning import metrics_reset_after_evaluation


class MetricStates(Callback):
    """Saves the states of each ``torchmetrics.Metric`` of the module that has been updated in the epoch
    running at the checkpoint, with the epoch and the batch they run up to; restored, it sets them back just
    before that batch trains, so the epoch's next updates add to them as they did in the unbroken run
    (exact: the same additions in the same order). A checkpoint from an epoch's end starts a new epoch:
    nothing is set. Under DDP each rank's states differ and the checkpoint holds rank 0's, so they are
    restored only in single-process runs."""

    def __init__(self) -> None:
        self._next_batch: int | None = None  # the batch index the states run up to (exclusive)
        self._pending: dict[str, Any] | None = None
        self._module: L.LightningModule | None = None
        self._epoch = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._module = pl_module

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._next_batch = None
        self._epoch = trainer.current_epoch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        pending, self._pending = self._pending, None
        same_place = pending and (pending["epoch"], pending["next_batch"]) == (
            trainer.current_epoch,
            batch_idx,
        )
        if same_place and trainer.world_size == 1:
            metrics = dict(_metrics(pl_module))
            for name, states in pending["states"].items():
                if name in metrics:
                    _set_states(metrics[name], states)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._next_batch = batch_idx + 1

    def state_dict(self) -> dict[str, Any]:
        if self._module is None or self._next_batch is None:
            return {}
        # A checkpoint saved at the end of a validation (mid-epoch, val_check_interval) leaves out the metrics
        # that validation logged: Lightning resets them right after, and the next validation starts afresh.
        resetting = {id(metric) for metric in metrics_reset_after_evaluation(self._module.trainer)}
        states = {
            name: {key: _copy(value) for key, value in metric.metric_state.items()}
            for name, metric in _metrics(self._module)
            if metric.update_count > 0 and id(metric) not in resetting
        }
        return {"epoch": self._epoch, "next_batch": self._next_batch, "states": states} if states else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict) if state_dict else None


def _metrics(module: L.LightningModule) -> list[tuple[str, Any]]:
    """``(qualified name, metric)`` of every ``torchmetrics.Metric`` inside ``module``."""
    try:
        from torchmetrics import Metric
    except ImportError:  # no torchmetrics installed: no metric objects to keep
        return []
    return [(name, m) for name, m in module.named_modules() if isinstance(m, Metric)]


def _copy(value: Any) -> Any:
    """A state as it is now, on the CPU (a background checkpoint write must not see later in-place updates)."""
    if isinstance(value, list):
        return [item.detach().cpu().clone() for item in value]
    return value.detach().cpu().clone()


def _set_states(metric: Any, states: dict[str, Any]) -> None:
    device = metric.device
    for key, value in states.items():
        if key in metric.metric_state:
            moved = [item.to(device) for item in value] if isinstance(value, list) else value.to(device)
            setattr(metric, key, moved)
