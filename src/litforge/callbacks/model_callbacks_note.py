"""A note when the module's own ``configure_callbacks()`` returns an ``EarlyStopping``: Lightning lets it replace
the config's (the packaged default's on ``val_loss`` included), silently, and ``best.ckpt`` keeps following
its own metric::

    litforge fit --model forecast.EarlyForecaster --data forecast.SeriesData
    # litforge: note: EarlyForecaster.configure_callbacks() returns an EarlyStopping on val_mae (max ...)
"""

from __future__ import annotations

import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping


class ModelEarlyStoppingNote(L.Callback):
    """Says, as training starts, which of the trainer's ``EarlyStopping`` callbacks came from the module's
    ``configure_callbacks()`` (those not in ``configured``, the config's) and what they replaced; ``from_model``
    answers the same for the closing line's "early stopping: ..."."""

    def __init__(self, configured: list[Any], best_monitor: str, quiet: bool = False) -> None:
        self._quiet = quiet
        self._configured = {id(callback) for callback in configured if isinstance(callback, EarlyStopping)}
        self._replaced = [c.monitor for c in configured if isinstance(c, EarlyStopping)]
        self._best_monitor = best_monitor

    def from_model(self, stopper: EarlyStopping) -> bool:
        return id(stopper) not in self._configured

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        ours = [c for c in trainer.callbacks if isinstance(c, EarlyStopping) and self.from_model(c)]
        if not ours or self._quiet or not trainer.is_global_zero:
            return
        watched = ", ".join(sorted({c.monitor for c in ours}))
        replaced = f"; it replaces the config's on {', '.join(self._replaced)}" if self._replaced else ""
        apart = (
            f"; best.ckpt follows {self._best_monitor} (--monitor {ours[0].monitor} to keep the same metric)"
            if self._best_monitor not in {c.monitor for c in ours}
            else ""
        )
        print(
            f"litforge: note: {type(pl_module).__name__}.configure_callbacks() returns an EarlyStopping on "
            f"{watched}{replaced}{apart}",
            file=sys.stderr,
        )
