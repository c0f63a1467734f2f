"""``checkpoints/best.ckpt`` by a monitored metric whenever the model logs it, and ``checkpoints/last.ckpt``.

litforge fit                                  # best by val_loss (lowest) when logged, last always
litforge fit --monitor val_acc --monitor_mode max
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

DEFAULT_MONITOR = "val_loss"


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` writing ``best.ckpt`` and ``last.ckpt`` into a run's ``checkpoints/``.

    A model that never logs the monitored metric (no validation loop, other metric names) gets
    ``last.ckpt`` only, with one line on stderr saying so, instead of Lightning's error. Files are
    overwritten in place (no ``best-v1.ckpt``): a run folder holds one run.

    Args:
        dirpath: the run's ``checkpoints/`` folder.
        monitor: the metric that chooses ``best.ckpt``; ``None`` keeps ``last.ckpt`` only.
        mode: ``min`` or ``max``: whether a lower or a higher ``monitor`` is better.
    """

    def __init__(self, dirpath: str | Path, monitor: str | None = DEFAULT_MONITOR, mode: str = "min") -> None:
        super().__init__(
            dirpath=dirpath,
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1 if monitor else 0,
            save_last=True,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._without_best_unless_logged(trainer, super().on_train_epoch_end, trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._without_best_unless_logged(trainer, super().on_validation_end, trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.monitor and not self.best_model_path and trainer.is_global_zero:
            print(
                f"litforge: the model logged no '{self.monitor}', so the run has checkpoints/last.ckpt but "
                "no best.ckpt (choose the metric with --monitor NAME)",
                file=sys.stderr,
                flush=True,
            )

    def _without_best_unless_logged(self, trainer: L.Trainer, save: Any, *args: Any) -> None:
        """Run Lightning's save, with ``save_top_k`` 0 while the monitored metric is not logged (Lightning
        would raise)."""
        if self.monitor is None or self.monitor in trainer.callback_metrics:
            save(*args)
            return
        top_k, self.save_top_k = self.save_top_k, 0
        try:
            save(*args)
        finally:
            self.save_top_k = top_k
