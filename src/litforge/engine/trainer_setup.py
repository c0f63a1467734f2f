"""What every litforge run gets unless the config says otherwise: loggers and checkpoints in the run
folder, the resolved config sent to every logger, and clean hyperparameters."""

from __future__ import annotations

import inspect
import sys
from typing import Any

import lightning as L
import yaml
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from litforge._compat.lightning_cli import InstantiatorFn
from litforge.callbacks import (
    CSVPredictionWriter,
    EagerModelSummary,
    LearningCurves,
    PerfSummary,
    PlainProgressBar,
    RunCheckpoint,
    RunProgressBar,
)
from litforge.engine.run_dir import RunDir
from litforge.resilience import resilience_callbacks
from litforge.resilience.logger_resume import KeepEarlierMetrics
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

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and "ckpt_path" in self.config:
            self.config["ckpt_path"] = None  # where a fit started (a resume) is state, not part of its recipe
        super().setup(trainer, pl_module, stage)

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


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def has_instance(callbacks: list[Any], kind: type) -> bool:
    return any(isinstance(c, kind) for c in callbacks)


def default_callbacks(
    run: RunDir,
    subcommand: str,
    trainer_config: dict[str, Any],
    given: list[Any],
    monitor: str | None,
    monitor_mode: str,
    every_n_train_steps: int,
    quiet: bool,
    every_n_minutes: float | None = None,
) -> list[Any]:
    """The callbacks litforge adds to a run, each unless the config gives one of its kind: best/last
    checkpoints, the model summary, a progress bar; for fit the learning curves, the loggers' resume, the
    performance summary and the resilience callbacks; for predict ``predictions.csv``."""
    checkpointing = trainer_config.get("enable_checkpointing") is not False
    extra: list[Any] = []
    if checkpointing and not has_instance(given, ModelCheckpoint):
        extra.append(RunCheckpoint(run.checkpoints, monitor, monitor_mode))
    if trainer_config.get("enable_model_summary") is not False and not has_instance(given, ModelSummary):
        extra.append(EagerModelSummary())  # Lightning's own summary would keep compiled modules eager
    if trainer_config.get("enable_progress_bar") is not False and not has_instance(given, ProgressBar):
        extra.append(RunProgressBar() if sys.stdout.isatty() else PlainProgressBar())
    if subcommand == "fit":
        if not quiet:
            extra.append(LearningCurves())
        extra.append(KeepEarlierMetrics())  # a resumed run logs each step once, keeping the earlier ones
        if not has_instance(given, PerfSummary):
            extra.append(PerfSummary(run.path / "perf.json", print_table=not quiet))
        extra += resilience_callbacks(
            run.checkpoints,
            every_n_train_steps=every_n_train_steps,
            checkpointing=checkpointing,
            every_n_minutes=every_n_minutes,
        )
    if subcommand == "predict":
        extra.append(CSVPredictionWriter(run.path / "predictions.csv"))
    return extra
