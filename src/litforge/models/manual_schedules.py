"""Learning-rate schedulers under manual optimization, stepped at the interval their config names.

With ``automatic_optimization = False`` Lightning keeps the schedulers returned by
``configure_optimizers`` (it saves and restores their state in checkpoints, and ``LearningRateMonitor``
reads their ``interval``), but it never steps them. Call ``step_lr_schedulers`` after the optimizers
stepped (``"step"``) and after the epoch's last training batch (``"epoch"``, see ``is_last_training_batch``)
so ``interval`` and ``frequency`` still mean what they say.

Why not ``on_train_epoch_end``: Lightning steps epoch-interval schedulers right after the last training
batch, before the epoch-end validation and the checkpoint it triggers. Stepping later would save a
checkpoint whose scheduler is one epoch behind its loop state, and a resumed run would lag by an epoch.
"""

from __future__ import annotations

from typing import Literal

import lightning as L


def step_lr_schedulers(module: L.LightningModule, interval: Literal["step", "epoch"], index: int) -> int:
    """Step every scheduler of ``module`` whose config says ``interval``, honouring its ``frequency``.

    Args:
        module: a LightningModule with ``automatic_optimization = False``, attached to a trainer.
        interval: ``"step"`` (call after the optimizers stepped, with ``index=batch_idx``) or
            ``"epoch"`` (call from ``on_train_batch_end`` when ``is_last_training_batch``, with
            ``index=current_epoch``).
        index: zero-based batch or epoch index, like Lightning's own loop uses.

    Returns:
        How many schedulers were stepped.
    """
    stepped = 0
    for config in module.trainer.lr_scheduler_configs:
        if config.interval == interval and (index + 1) % config.frequency == 0:
            # The hook (not scheduler.step() directly) so a module's custom lr_scheduler_step still applies.
            module.lr_scheduler_step(config.scheduler, None)
            stepped += 1
    return stepped


def is_last_training_batch(trainer: L.Trainer, batch_idx: int) -> bool:
    """True for the epoch's last training batch (also under ``limit_train_batches``)."""
    return bool(trainer.is_last_batch) or batch_idx + 1 >= trainer.num_training_batches
