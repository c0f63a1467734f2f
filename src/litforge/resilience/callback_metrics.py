"""The metrics callbacks and schedulers read (``trainer.callback_metrics``) in every checkpoint, and the
end-of-epoch ``ReduceLROnPlateau`` steps that Lightning skips around a resume.

Lightning does not step an epoch-interval ``ReduceLROnPlateau`` at the end of the epoch a run resumed in
(its metric "is not saved in the checkpoint"), and a checkpoint written at an epoch's end, before that
step, resumes at the next epoch without it. Either way the resumed run kept a learning rate the unbroken
run had lowered, and diverged. With the metrics saved, each step is taken as in the unbroken run.

litforge fit --resume auto          # litforge adds ``CallbackMetricsState`` to every fit
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from litforge._compat.lightning import (
    in_epoch_end,
    let_plateau_step,
    plateau_step_skipped,
    take_plateau_steps,
)


class CallbackMetricsState(Callback):
    """Saves ``trainer.callback_metrics`` and whether an epoch's plateau step is still due; restored, it puts
    back the metrics the resumed process has not logged again (a validation metric from before the
    checkpoint, which the unbroken run still held), takes a due plateau step at the start of training,
    and at the end of the epoch a run resumed in lets Lightning take its plateau step."""

    def __init__(self) -> None:
        self._trainer: L.Trainer | None = None
        self._pending: dict[str, Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        trainer = self._trainer
        if trainer is None:
            return {}
        metrics = {
            str(k): v.detach().cpu() for k, v in trainer.callback_metrics.items() if torch.is_tensor(v)
        }
        # saved at an epoch's end, before its plateau step: Lightning resumes past that step
        return {"metrics": metrics, "plateau_due": trainer.current_epoch if in_epoch_end(trainer) else None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict or None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore(
            trainer, pl_module
        )  # resumed from the last epoch's end: no training, the step still due

    def _restore(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pending, self._pending = self._pending, None
        if not pending:
            return
        for key, value in pending.get("metrics", {}).items():
            trainer.callback_metrics.setdefault(key, value.to(pl_module.device))
        due = pending.get("plateau_due")
        if due is not None and trainer.current_epoch == due + 1:  # resumed past that epoch's end
            take_plateau_steps(trainer, due)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        monitors = [
            config.monitor
            for config in trainer.lr_scheduler_configs
            if config.reduce_on_plateau and config.interval == "epoch"
        ]
        if (
            monitors
            and plateau_step_skipped(trainer)
            and all(m in trainer.callback_metrics for m in monitors)
        ):
            let_plateau_step(trainer)
