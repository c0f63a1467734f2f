"""What every litforge run gets unless the config says otherwise: loggers and checkpoints in the run
folder, the resolved config sent to every logger, and clean hyperparameters."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelSummary, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from litforge._compat.lightning_cli import InstantiatorFn
from litforge.atomic_files import write_text_atomically
from litforge.callbacks import (
    CSVPredictionWriter,
    EagerModelSummary,
    LearningCurves,
    PerfSummary,
    PlainProgressBar,
    RunCheckpoint,
    RunProgressBar,
)
from litforge.callbacks.endless_epoch import EndlessEpochNote
from litforge.callbacks.idle_layers_note import IdleLayersNote
from litforge.callbacks.monitor_mode import (
    configured_mode,
    configured_monitors,
    mode_by_name,
    unstated_min_on_scores,
)
from litforge.callbacks.run_checkpoint import DEFAULT_MONITOR
from litforge.engine.config_sources import flat_config
from litforge.engine.run_dir import RunDir
from litforge.resilience import resilience_callbacks
from litforge.resilience.logger_resume import KeepEarlierMetrics
from litforge.resilience.resumable_csv import ResumableCSVLogger


class RunConfigCallback(SaveConfigCallback):
    """Saves the resolved config into the run folder, without the run-selection keys (so a saved
    ``config.yaml`` used as ``--config`` starts a new run instead of overwriting this one).

    ``folder`` is where ``config.yaml`` goes (the run folder, or ``<run>/<subcommand>``), whatever the
    loggers are: Lightning's callback writes into ``trainer.log_dir``, which is the working folder when
    ``trainer.logger`` is false and a tracker's folder when a tracker comes first."""

    def __init__(
        self, parser: LightningArgumentParser, config: Namespace, folder: str | None = None, **kwargs: Any
    ) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._kept_note: str | None = None  # keep_the_earlier_config's, said once training starts
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
        if self.folder is None:
            super().setup(trainer, pl_module, stage)
            return
        if self.already_saved:
            return
        if trainer.is_global_zero:
            text = self.parser.dump(self.config, skip_none=False)
            self.folder.mkdir(parents=True, exist_ok=True)
            if stage == "fit":
                self._kept_note = keep_the_earlier_config(self.folder / self.config_filename, text)
            write_text_atomically(self.folder / self.config_filename, text)
            self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The note of a resume with other settings, once training starts: a resume refused before (a
        schedule past its length) puts the earlier config.yaml back and must not say otherwise."""
        if self._kept_note and trainer.is_global_zero:
            print(self._kept_note, file=sys.stderr)
        self._kept_note = None

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Send the resolved config to every logger (W&B, MLflow, TensorBoard, CSV), not only to
        ``config.yaml``: Lightning's ``SaveConfigCallback`` writes one file into the first logger's folder,
        which for ``WandbLogger`` is not the run (Lightning #7679)."""
        resolved = yaml.safe_load(self.parser.dump(self.config))  # as config.yaml: no link targets
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": resolved})


def keep_the_earlier_config(path: Path, text: str) -> str | None:
    """A resume with other settings (``--model.lr 5e-4``, a longer ``max_epochs``) is about to replace the
    run's ``config.yaml``: the one the earlier steps trained with is kept as ``config.<n>.yaml`` beside it,
    and the note returned says what changed, so the run folder still says how each part of the run was
    trained."""
    earlier = path.read_text() if path.is_file() else text
    if earlier == text:
        return None
    before, after = flat_config(yaml.safe_load(earlier)), flat_config(yaml.safe_load(text))
    changed = [
        f"{k}: {before.get(k)} -> {after.get(k)}"
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    ]
    if not changed:
        return None  # the same values, written another way
    number = 1
    while (kept := path.with_name(f"{path.stem}.{number}{path.suffix}")).exists():
        number += 1
    write_text_atomically(kept, earlier)
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    return (
        f"litforge: note: this resume trains with other settings ({', '.join(changed[:3])}{more}); "
        f"{path.name} now holds them, and the earlier steps' config is kept as {kept.name}"
    )


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


def asks_several_processes(devices: Any, num_nodes: Any) -> bool:
    """Whether trainer settings ask for more than one process (``devices: 2``, ``"0,1"``, ``[0, 1]``, ``-1``,
    ``num_nodes: 2``); ``auto`` counts as one (one device on a CPU machine)."""
    one = devices in (None, 1, "1", "auto") or (isinstance(devices, (list, tuple)) and len(devices) == 1)
    return not one or (isinstance(num_nodes, int) and num_nodes > 1)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def has_instance(callbacks: list[Any], kind: type) -> bool:
    return any(isinstance(c, kind) for c in callbacks)


def best_checkpoint_monitor(
    given: list[Any],
    monitor: str | None,
    monitor_mode: str | None,
    model: Any,
    mode_typed: bool = True,
    stated: set[str] | None = None,
) -> tuple[str, str, str | None]:
    """The metric that picks ``best.ckpt``, its mode, and a note when litforge chose the mode or the metric.

    The metric: ``--monitor``, else the first ``ModelCheckpoint`` of the config that monitors one, else the
    model's ``checkpoint_monitor`` attribute, else the first such ``EarlyStopping``, else ``val_loss``. Its
    mode: ``--monitor_mode``, else that of a config callback on the same metric, else ``max`` for a score's
    name (``val_iou``, ``val_acc``; a note says so), else ``min``. A callback's ``min`` that is only
    Lightning's default (its metric not in ``stated``, the metrics the user gave a mode) does not outweigh
    a score's name. A ``monitor_mode`` from a config file (``mode_typed`` false: a run's config.yaml of an
    earlier litforge records ``min``) that the config's callback on the metric or the metric's name
    contradicts is kept, with a note."""
    monitors = configured_monitors(given)
    from_stopper = False
    if not monitor:
        checkpoints = [m for m in monitors if m[0] == "ModelCheckpoint"]
        stoppers = [m for m in monitors if m[0] == "EarlyStopping"]
        if checkpoints:
            monitor = checkpoints[0][1]
        elif getattr(model, "checkpoint_monitor", None):  # the model's author chose it
            monitor = model.checkpoint_monitor
        elif stoppers and stoppers[0][1:] != (DEFAULT_MONITOR, "min"):
            monitor, from_stopper = stoppers[0][1], True
        else:
            monitor = DEFAULT_MONITOR
    configured = configured_mode(monitors, monitor)
    if monitor in unstated_min_on_scores(monitors, stated):
        configured = None  # Lightning's default, not the user's word: the name decides
    note = None
    if monitor_mode is None:
        monitor_mode = configured
        if monitor_mode is None and mode_by_name(monitor) == "max":
            monitor_mode = "max"
            note = f"best.ckpt keeps the highest {monitor}, a score by its name (--monitor_mode min keeps the lowest)"
    elif not mode_typed and monitor_mode != (configured or mode_by_name(monitor) or monitor_mode):
        other = "max" if monitor_mode == "min" else "min"
        why = "the config's callback on it has" if configured else "its name says"
        note = (
            f"best.ckpt keeps the {'lowest' if monitor_mode == 'min' else 'highest'} {monitor} (monitor_mode "
            f"{monitor_mode} of the config) while {why} {other}: --monitor_mode {other} to keep the "
            f"{'highest' if other == 'max' else 'lowest'}"
        )
    monitor_mode = monitor_mode or "min"
    if from_stopper:
        note = (
            f"best.ckpt follows {monitor} ({monitor_mode}), the metric of the config's EarlyStopping "
            "(--monitor picks another)"
        )
    return monitor, monitor_mode, note


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
    monitor_typed: bool = False,
) -> list[Any]:
    """The callbacks litforge adds to a run: best/last checkpoints (also beside a ``ModelCheckpoint`` of the
    config: ``--ckpt_path best``, ``--run NAME`` and resumes find the run by them); and, each unless the
    config gives one of its kind, the model summary, a progress bar; for fit the learning curves, the
    loggers' resume, the performance summary and the resilience callbacks; for predict ``predictions.csv``.
    ``monitor_typed``: ``monitor`` is a ``--monitor`` flag, which the first validation refuses if unlogged."""
    # fast_dev_run is a smoke test: Lightning keeps no checkpoint or log of it, and neither does litforge
    smoke_test = bool(trainer_config.get("fast_dev_run"))
    checkpointing = trainer_config.get("enable_checkpointing") is not False and not smoke_test
    extra: list[Any] = []
    if checkpointing:
        extra.append(RunCheckpoint(run.checkpoints, monitor, monitor_mode, typed=monitor_typed))
    if trainer_config.get("enable_model_summary") is not False and not has_instance(given, ModelSummary):
        extra.append(EagerModelSummary())  # Lightning's own summary would keep compiled modules eager
    if trainer_config.get("enable_progress_bar") is not False and not has_instance(given, ProgressBar):
        extra.append(RunProgressBar() if sys.stdout.isatty() else PlainProgressBar())
    if subcommand == "fit":
        if not quiet:
            extra.append(LearningCurves())
        extra.append(KeepEarlierMetrics())  # a resumed run logs each step once, keeping the earlier ones
        extra.append(EndlessEpochNote())  # a stream without limit_train_batches: says what never happens
        extra.append(IdleLayersNote())  # a from_pretrained encoder left in eval mode: no dropout
        if not has_instance(given, PerfSummary) and not smoke_test:
            extra.append(PerfSummary(run.path / "perf.json", print_table=not quiet))
        extra += resilience_callbacks(
            run.checkpoints,
            every_n_train_steps=every_n_train_steps,
            checkpointing=checkpointing,
            every_n_minutes=every_n_minutes,
            resumable=not quiet,  # a search's trial is retried from scratch, never resumed
        )
    if subcommand == "predict":
        extra.append(CSVPredictionWriter(run.path / "predictions.csv"))
    return extra
