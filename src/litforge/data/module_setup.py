"""A module's ``setup(stage)`` run as the Trainer runs it, for code that builds a module without a Trainer
(``litforge export``, ``litforge check``): a module that builds a layer there from its datamodule
(``self.trainer.datamodule.n_features``, a common pattern) then has it before its weights load::

    built = set_up_with_data(module, datamodule, "predict")  # True when module.setup ran
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from lightning.pytorch.utilities.model_helpers import is_overridden


def builds_in_setup(module: Any) -> bool:
    """Whether ``module`` is a LightningModule with its own ``setup``."""
    return isinstance(module, L.LightningModule) and is_overridden("setup", module, parent=L.LightningModule)


def set_up_with_data(module: Any, datamodule: Any, stage: str) -> bool:
    """Run ``module.setup(stage)`` with ``self.trainer.datamodule`` set to ``datamodule`` (already set up, as
    the Trainer sets it up first), on a bare CPU Trainer that is detached again after. ``False`` (nothing
    run) for a module without its own ``setup``."""
    if not builds_in_setup(module):
        return False
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:  # no "GPU available: ..." lines: this Trainer runs nothing
        logger.setLevel(logging.WARNING)
    try:
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    trainer.datamodule = datamodule
    module.trainer = trainer
    try:
        module.setup(stage)
    finally:
        module.trainer = None
    return True
