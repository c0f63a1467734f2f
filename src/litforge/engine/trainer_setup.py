"""What every litforge run gets unless the config says otherwise: loggers and checkpoints in the run
folder, the resolved config sent to every logger, and clean hyperparameters."""

from __future__ import annotations

import inspect
from typing import Any

import lightning as L
import yaml
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from litforge._compat.lightning_cli import InstantiatorFn
from litforge.engine.run_dir import RunDir
from litforge.resilience.resumable_csv import ResumableCSVLogger


class RunConfigCallback(SaveConfigCallback):
    """Saves the resolved config into the run folder, without the run-selection keys (so a saved
    ``config.yaml`` used as ``--config`` starts a new run instead of overwriting this one)."""

    def __init__(self, parser: LightningArgumentParser, config: Namespace, **kwargs: Any) -> None:
        config = config.clone()
        for key in ("experiment", "run", "resume"):
            if key in config:
                config[key] = None
        for key in ("overwrite", "debug"):
            if key in config:
                del config[key]
        super().__init__(parser, config, **kwargs)

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Send the resolved config to every logger (W&B, MLflow, TensorBoard, CSV), not only to
        ``config.yaml``: Lightning's ``SaveConfigCallback`` writes one file into the first logger's folder,
        which for ``WandbLogger`` is not the run (Lightning #7679)."""
        resolved = yaml.safe_load(self.parser.dump(self.config, skip_link_targets=False))
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": resolved})


class LinkedHparamsInstantiator(InstantiatorFn):
    """Lightning's module instantiator, minus the links jsonargparse skipped because the chosen class has no
    such parameter (e.g. ``num_labels`` for ``Classifier``): otherwise they would land in its hparams."""

    def __call__(self, class_type: type, *args: Any, applied_instantiation_links: dict, **kwargs: Any) -> Any:
        params = inspect.signature(class_type).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        links = {
            key: value
            for key, value in applied_instantiation_links.items()
            if takes_any or not key.startswith(f"{self.key}.") or key.rsplit(".", 1)[-1] in params
        }
        return super().__call__(class_type, *args, applied_instantiation_links=links, **kwargs)


def default_loggers(run: RunDir, subcommand: str = "fit") -> list[Any]:
    """TensorBoard and CSV loggers writing into the run folder (``<run>/<subcommand>/`` except for fit,
    so that testing a trained run never overwrites its training metrics)."""
    version = run.run if subcommand == "fit" else f"{run.run}/{subcommand}"
    common = {"save_dir": str(run.root), "name": run.experiment, "version": version}
    csv_logger = ResumableCSVLogger if subcommand == "fit" else CSVLogger  # fit: kept across resumes
    return [TensorBoardLogger(**common, default_hp_metric=False), csv_logger(**common)]


def class_path_of(value: Any) -> str | None:
    return value.get("class_path") if isinstance(value, (dict, Namespace)) else None


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def has_instance(callbacks: list[Any], kind: type) -> bool:
    return any(isinstance(c, kind) for c in callbacks)
