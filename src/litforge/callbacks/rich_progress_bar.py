"""Lightning's rich progress bar for terminals, without the logger-version column (the run folder says it)."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar


class RunProgressBar(RichProgressBar):
    """``RichProgressBar`` minus ``v_num``; litforge prints the run folder at the end of ``fit`` instead."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
