"""Stop a run whose loss turns NaN or infinite, before the bad step touches the weights.

litforge fit --model.lr 1e6        # diverges: stops with one line naming the step and the last checkpoint

The line tells the two usual causes apart: NaN or infinite values in the batch's inputs (bad data: no
learning rate helps), or a finite batch and a diverging model (lower the learning rate, clip gradients).
The batch is checked only once the loss is bad, so training pays nothing for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from litforge.errors import JobFailed


class NonFiniteLoss(JobFailed):
    """The training loss became NaN or infinite (exit 1); the checkpoints written so far are intact."""


class FiniteLossGuard(Callback):
    """Checks the loss before every backward pass and raises ``NonFiniteLoss`` when it is not finite.

    The check runs in ``on_before_backward``, so the optimizer never applies the bad step and no
    checkpoint with NaN weights is written. In distributed runs all ranks stop together. The message
    names the batch's non-finite inputs when there are any (``batch['features']: 3 NaN of 2048``).

    Args:
        checkpoints: the run's checkpoint folder, named in the message (the newest file there).
    """

    def __init__(self, checkpoints: str | Path | None = None) -> None:
        self.checkpoints = Path(checkpoints) if checkpoints is not None else None
        self._batch: Any = None  # the batch of the step in progress (a reference, no copy)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch = batch

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        self._batch = None

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        loss = loss.detach()
        # A scalar loss (the usual case): one .item() (0.2 us on a CPU, against 7 us for isfinite().all() on a
        # tensor). Both wait for the device, as any check of the value must.
        bad = not math.isfinite(loss.item()) if loss.numel() == 1 else not bool(torch.isfinite(loss).all())
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        value = loss.float().flatten()[0].item() if loss.numel() else float("nan")
        bad_inputs = non_finite_tensors(self._batch)
        advice = (
            f"The batch's inputs are not finite ({'; '.join(bad_inputs)}): clean the data (drop or fill the "
            "NaN/inf values); a lower learning rate will not help"
            if bad_inputs
            else "The batch's inputs are finite: the model diverged. Try a lower learning rate or "
            "--trainer.gradient_clip_val 1.0"
        )
        raise NonFiniteLoss(
            f"training loss is {value} at epoch {trainer.current_epoch}, global step {trainer.global_step}; "
            f"stopped before the update. Last good checkpoint: {self._newest_checkpoint()}. {advice}"
        )

    def _newest_checkpoint(self) -> str:
        if self.checkpoints is None or not self.checkpoints.is_dir():
            return "none"
        files = sorted(self.checkpoints.glob("*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
        return str(files[-1]) if files else "none"


def non_finite_tensors(batch: Any, where: str = "batch") -> list[str]:
    """``"<where>: <n> NaN/inf of <size>"`` for each floating-point tensor in ``batch`` (nested in lists,
    tuples and dicts) that holds NaN or infinite values."""
    if isinstance(batch, torch.Tensor):
        if not batch.is_floating_point() and not batch.is_complex():
            return []
        bad = int((~torch.isfinite(batch)).sum().item())
        return [f"{where}: {bad} NaN/inf of {batch.numel()}"] if bad else []
    if isinstance(batch, Mapping):  # dict, also Hugging Face's BatchEncoding
        items = [(f"{where}[{key!r}]", value) for key, value in batch.items()]
    elif isinstance(batch, (list, tuple)):
        items = [(f"{where}[{index}]", value) for index, value in enumerate(batch)]
    else:
        return []
    return [found for name, value in items for found in non_finite_tensors(value, name)]
