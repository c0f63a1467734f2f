"""litforge's ``LightningCLI``: the packaged default config, the run folder, clean errors, default callbacks.

Used by ``litforge fit|validate|test|predict``, ``tune`` and ``check``; see ``docs/cli.md``.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import lightning as L
from jsonargparse import Namespace
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from lightning.pytorch.utilities.model_helpers import is_overridden

from litforge._compat.argparse import parser_actions
from litforge._compat.lightning_cli import HookedLightningCLI, quiet_seeding
from litforge.callbacks.model_callbacks_note import ModelEarlyStoppingNote
from litforge.callbacks.monitor_mode import (
    configured_monitors,
    mode_by_name,
    move_packaged_early_stopping,
    unstated_mode_notes,
)
from litforge.callbacks.run_checkpoint import DEFAULT_MONITOR, RunCheckpoint
from litforge.engine.checkpoint_fit import check_checkpoint_fits
from litforge.engine.config_mistakes import (
    config_mistake,
    configured_place,
    logger_argument_missing,
    misplaced_init_args,
    trainer_value_problem,
)
from litforge.engine.config_sources import (
    CommandLine,
    class_path_of,
    default_class_path,
    packaged_defaults,
    replaced_class_notes,
    scan,
    stated_callback_modes,
)
from litforge.engine.failures import BuildFailed, hparams_conflict
from litforge.engine.folder_snapshot import FolderSnapshot
from litforge.engine.help_text import drop_overridden_defaults
from litforge.engine.parsing import (
    LitforgeArgumentParser,
    init_arg_problem,
    litforge_cause,
    parser_mode,
)
from litforge.engine.profiling import run_folder_profiler
from litforge.engine.run_dir import (
    RunDir,
)
from litforge.engine.run_resolution import (
    appended_once_on_resume,
    keep_the_runs_monitor,
    note_data_changed_since,
    refuse_another_experiments_run,
    remove_made_run,
    resolve_evaluation_run,
    resolve_fit_run,
    with_resumed_runs_config,
    with_run_config,
    without_runs_starting_point,
)
from litforge.engine.trainer_setup import (
    LinkedHparamsInstantiator,
    RunConfigCallback,
    as_list,
    asks_several_processes,
    best_checkpoint_monitor,
    default_callbacks,
    default_loggers,
    has_instance,
)
from litforge.errors import UsageError
from litforge.resilience import DEFAULT_EVERY_N_STEPS, AtomicCheckpointIO, Interrupted, Preempted
from litforge.resilience.changed_optimizer_settings import ChangedOptimizerSettings
from litforge.resilience.checkpoint_file import note_if_unverified
from litforge.resilience.elastic_restart import init_process_group_for_restart
from litforge.resilience.resume import (
    clear_finished,
    finish_record,
    further_hint,
    mark_finished,
    remove_killed_writes,
)
from litforge.resilience.run_lock import RunLock, is_run_owner

__all__ = ["LitforgeCLI"]

EVALUATION_SUBCOMMANDS = ("validate", "test", "predict")
# Options of one Lightning subcommand that every subcommand accepts, so that any config litforge writes
# (fit's config.yaml, a --print_config of test) is a valid --config for every other subcommand.
_CKPT_PATH_HELP = {
    "fit": "a checkpoint file to start training from (its whole training state); --resume continues a run "
    "(see docs/fault-tolerance.md)",
    "evaluate": "best (the default: the newest best.ckpt of the experiment's runs, or of --run; last.ckpt "
    "where no run has one), last, or a checkpoint file (see docs/cli.md)",
}
_TRAINER_METHOD_OPTIONS: dict[str, tuple[Any, Any, str]] = {
    "ckpt_path": (
        str | None,
        None,
        "Checkpoint to start from (validate/test/predict: best, last or a path).",
    ),
    "weights_only": (
        bool | None,
        None,
        "How Lightning loads ckpt_path (litforge always loads weights only).",
    ),
    "verbose": (bool, True, "validate/test: print the results (accepted by every subcommand)."),
    "return_predictions": (bool | None, None, "predict: keep predictions in memory (accepted everywhere)."),
}
_PREDICT_DESCRIPTION = (
    "Write predictions.csv for a checkpoint (--ckpt_path best|last|FILE).\n"
    "From an exported folder instead, without the training code: "
    "litforge predict --artifact EXPORT_DIR --input rows.csv|.npy|.npz [--output FILE] (a .npz of one array "
    "per input for a forward of several; see docs/export.md)."
)


class LitforgeCLI(HookedLightningCLI):
    """``LightningCLI`` with any LightningModule/LightningDataModule by class path and litforge's run folder.

    Args:
        args: the command line after ``litforge``, e.g. ``["fit", "--trainer.max_epochs", "3"]``.
        extra_callbacks: callbacks added to the trainer on top of the config's and litforge's defaults
            (``litforge tune`` passes its pruning/reporting callback here).
        run: ``False`` parses ``args`` (no subcommand) and builds only the model and datamodule: no trainer,
            no run folder (``litforge check`` uses this; see ``instantiate_model_and_data``).
        quiet: a search's trial: no summary table, no closing lines on stdout and no learning-curve PNG
            (``perf.json`` and ``metrics.csv`` are still written; the PNG cost ~10% of a short trial);
            ``litforge tune`` prints one line per trial instead.
    """

    def __init__(
        self,
        args: list[str] | Namespace,
        extra_callbacks: list[Any] | None = None,
        run: bool = True,
        quiet: bool = False,
        parse_only: bool = False,
    ) -> None:
        import litforge.data
        import litforge.models  # noqa: F401  (registers short names: --model Classifier)

        self.run_dir: RunDir | None = None
        self.finished_run: dict[str, Any] | None = None  # set when --resume auto finds a finished run
        self.extra_callbacks = list(extra_callbacks or [])
        self.quiet = quiet
        self.parse_only = parse_only
        self.subcommand_parser: LightningArgumentParser | None = None
        self._new_folder: Path | None = None
        # test/predict/validate's folder, or the run folder a fit resumes in: put back on failure
        self._folder_before: FolderSnapshot | None = None
        self._checkpoints_before: set[str] = set()
        self._start_step = StepAtTrainStart()
        self._stopping_note: ModelEarlyStoppingNote | None = None
        self._explicit_model_args: dict[str, Any] = {}
        self._configured_model_args: dict[str, Any] = {}
        self._model_args_changed: dict[str, Any] = {}  # --model.NAME flags that replaced a checkpoint's value
        if isinstance(args, Namespace):  # a complete typed config (engine.api.run_command)
            self._subcommand = args.subcommand
            model = args[args.subcommand].get("model")
            self.command_line = CommandLine([], named_classes={"model": class_path_of(model)}, complete=True)
        else:
            # Build the parser of the subcommand being run only: each costs ~0.1 s of jsonargparse work.
            self._subcommand = args[0] if run and args and args[0] in LightningCLI.subcommands() else None
            self.command_line = scan(list(args[1:] if self._subcommand else args))
            if self._subcommand in EVALUATION_SUBCOMMANDS and not parse_only:
                self.command_line = with_run_config(self.command_line)
            if self._subcommand == "fit":
                refuse_another_experiments_run(self.command_line)
                self.command_line = without_runs_starting_point(with_resumed_runs_config(self.command_line))
            if not quiet:
                _note_packaged_class(self.command_line)
            # DDP's launcher starts the other ranks with sys.argv: they make the same decisions from it.
            args = [self._subcommand, *self.command_line.args] if self._subcommand else self.command_line.args
        # allow_abbrev=False: a misspelt --trainer.max_epoch must fail, not silently match max_epochs.
        common = {"default_env": False, "allow_abbrev": False, "parser_mode": parser_mode()}
        described = {"description": _PREDICT_DESCRIPTION} if self._subcommand == "predict" else {}
        super().__init__(
            model_class=L.LightningModule,
            datamodule_class=L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_class=LitforgeArgumentParser,
            save_config_callback=RunConfigCallback,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={
                **common,
                **({self._subcommand: {**common, **described}} if self._subcommand else {}),
            },
            # LightningCLI's --optimizer/--lr_scheduler (a config's top-level optimizer: and lr_scheduler:)
            auto_configure_optimizers=True,
            args=args,
            run=run,
        )

    def subcommands(self) -> dict[str, set[str]]:  # type: ignore[override]
        every = LightningCLI.subcommands()
        return {self._subcommand: every[self._subcommand]} if self._subcommand else every

    # -- parser ------------------------------------------------------------------------------------
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--experiment",
            type=str | None,
            default=None,
            help="Experiment folder under the root (default: the model's class name, lower case).",
        )
        parser.add_argument(
            "--run",
            type=str | None,
            default=None,
            help="Run folder name (default: next free version_N). A fixed name finds a run again.",
        )
        parser.add_argument(
            "--resume",
            type=str | None,
            default="never",
            help="fit: auto continues this run (needs --run) from its newest valid checkpoint, or starts "
            "it; a finished run is left alone. never: start fresh. PATH: a checkpoint file or run folder.",
        )
        parser.add_argument(
            "--overwrite",
            type=bool,
            nargs="?",
            const=True,  # a bare --overwrite, as the refusal's hint reads; --overwrite true|false also work
            default=False,
            help="fit: replace an existing run folder of the same --run name (default: refuse).",
        )
        parser.add_argument(
            "--checkpoint_every_n_steps",
            type=NonNegativeInt,
            default=DEFAULT_EVERY_N_STEPS,
            help="fit: periodic checkpoint interval in optimizer steps (plus every epoch end; 0: epoch "
            "ends only).",
        )
        parser.add_argument(
            "--checkpoint_every_n_minutes",
            type=NonNegativeFloat | None,
            default=None,
            help="fit: also a periodic checkpoint once this many minutes of wall time have passed since "
            "the last one, so its cost does not grow with step speed (0 or unset: off; with "
            "--checkpoint_every_n_steps 0, a time-only interval).",
        )
        parser.add_argument(
            "--monitor",
            type=str | None,
            default=None,
            help=f"fit: the metric that picks checkpoints/best.ckpt (default: the monitor of a ModelCheckpoint "
            "under trainer.callbacks, else the model's checkpoint_monitor attribute, else the monitor of an "
            f"EarlyStopping there, else {DEFAULT_MONITOR}); "
            "no best.ckpt when it is not logged. The packaged default's early stopping follows it too.",
        )
        parser.add_argument(
            "--monitor_mode",
            type=Literal["min", "max"] | None,
            default=None,
            help="fit: whether a lower (min) or a higher (max) --monitor value is better (default: the mode of "
            "a ModelCheckpoint/EarlyStopping of the config on that metric, else max for a score's name such as "
            "val_acc or val_iou, else min).",
        )
        if self.preparing_subcommand is None:  # run=False: accept what any subcommand's config holds
            _accept_trainer_method_options(parser)
        defaults = packaged_defaults(self.command_line)
        parser.set_defaults(defaults)
        drop_overridden_defaults(parser, defaults)
        if not _is_litforge_class(self.command_line.named_classes.get("model"), "model"):
            return  # a user's own model keeps every argument it declares: no litforge links into it
        # Sizes the data knows are linked into litforge's models, so they are never stated twice.
        for source, target in (
            ("num_features", "num_features"),
            ("num_classes", "num_classes"),
            ("feature_mean", "input_mean"),
            ("feature_std", "input_std"),
            ("num_classes", "num_labels"),
            ("class_names", "label_names"),
        ):
            parser.link_arguments(f"data.{source}", f"model.init_args.{target}", apply_on="instantiate")
        # A pretrained model and its tokenizer always come from the same place.
        parser.link_arguments(
            "model.init_args.model_name_or_path", "data.init_args.tokenizer_name", apply_on="parse"
        )

    def model_and_data_instantiators(self) -> list[tuple[Any, type]]:
        return [
            (LinkedHparamsInstantiator(cli=self, key="model"), L.LightningModule),
            (LinkedHparamsInstantiator(cli=self, key="data"), L.LightningDataModule),
        ]

    def seeding_enabled(self) -> bool:
        # parsing alone must not reseed the process (or log "Seed set"); nor must a run with nothing to do
        return not self.parse_only and self.finished_run is None

    def seeding(self, seed: Callable[[], None]) -> None:
        """Seed quietly: "Seed set to N" is said once the config's classes are built (a one-line error about
        them comes alone), and a config without ``seed_everything`` gets seed 0 without Lightning's "No seed
        found" warning (config.yaml records the seed)."""
        with quiet_seeding():
            seed()

    def subcommand_parser_built(self, parser: LightningArgumentParser, subcommand: str) -> None:
        _accept_trainer_method_options(parser)
        for key, title in _OPTIMIZER_GROUP_TITLES.items():  # LightningCLI titles them with a tuple's repr
            if (group := parser.groups.get(key)) is not None:
                group.title, group.description = title, None
        for action in parser_actions(parser):  # Lightning's text offers "hpc" and "registry": not litforge's
            if action.dest == "ckpt_path":
                action.help = _CKPT_PATH_HELP.get(subcommand, _CKPT_PATH_HELP["evaluate"])
        self.subcommand_parser = parser

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except UsageError as error:
            line, message = self.command_line, str(error)
            named = (
                misplaced_init_args(line)
                or init_arg_problem(message, line)
                or logger_argument_missing(message, line)
                or config_mistake(message, line, getattr(self, "subcommand_parser", None))
            )
            if named is None:
                raise
            raise UsageError(named) from None
        section = self.config.get(self.config.get("subcommand") or "", self.config)
        if (problem := trainer_value_problem(section.get("trainer"), self.command_line)) is not None:
            raise UsageError(problem)
        if section.get("lr_scheduler") and not section.get("optimizer"):
            raise UsageError(
                "lr_scheduler: it needs an optimizer from the config too (--optimizer torch.optim.Adam, or a "
                "top-level optimizer:); the model's own configure_optimizers() is not combined with it"
            )
        for note in replaced_class_notes(self.command_line, section):
            print(f"litforge: note: {note}", file=sys.stderr)
        if self.config.get("subcommand") == "fit" and not self.quiet and not self.parse_only:
            _note_config_without_trainer(self.command_line)
            _note_validation_interval_in_batches(section.get("trainer"))
        if self.config.get("subcommand") == "fit":
            appended_once_on_resume(section.trainer, self.command_line)
            self._early_stopping_follows_monitor(section)
        if "subcommand" in self.config and not self.parse_only:
            self.run_dir = self._resolve_run(self.config.subcommand, self.config[self.config.subcommand])
        init_args = _model_init_args(self.config)
        self._configured_model_args = dict(init_args)  # before a --ckpt_path's hyperparameters replace them
        self._explicit_model_args = {
            name: init_args[name] for name in self.command_line.model_args if name in init_args
        }

    def _early_stopping_follows_monitor(self, section: Namespace) -> None:
        """``--monitor METRIC`` (or a config's ``monitor:``, as tune's best.yaml has) moves the packaged
        default's EarlyStopping (on val_loss) onto METRIC; an EarlyStopping of the user's replaces it."""
        line = self.command_line
        typed = line.typed_value("--monitor")
        callbacks = section.trainer.get("callbacks")
        if not isinstance(callbacks, list):
            return
        notes = move_packaged_early_stopping(
            callbacks,
            typed or section.get("monitor"),
            section.get("monitor_mode") if line.typed_value("--monitor_mode") or not typed else None,
            "--monitor" if typed else "monitor",
        )
        for note in notes if not self.quiet and not self.parse_only and rank_zero_only.rank == 0 else ():
            print(f"litforge: note: {note}", file=sys.stderr)

    def checkpoint_hyperparameters_applied(self) -> None:
        """Lightning has just replaced the model's init args with the checkpoint's hyperparameters: the
        ``--model.NAME`` flags typed on this command line win over them (a value the weights cannot take,
        such as another ``hidden_dim``, is then refused by ``check_checkpoint_fits`` in one line)."""
        if self.finished_run is not None:  # nothing will be built: no notes about what it would take
            return
        init_args = _model_init_args(self.config)
        taken = [
            f"{name}={init_args[name]} ({self._origin_of(name)}: {before})"
            for name, before in self._configured_model_args.items()
            if name in init_args and init_args[name] != before and name not in self._explicit_model_args
        ]
        if taken:  # the weights need them; a --model.NAME flag would still win
            print(f"litforge: note: the model takes the checkpoint's {', '.join(taken)}", file=sys.stderr)
        for name, value in self._explicit_model_args.items():
            if name in init_args and init_args[name] != value:
                print(
                    f"litforge: note: --model.{name} {value} replaces the checkpoint's {name}={init_args[name]}",
                    file=sys.stderr,
                )
                init_args[name] = value
                self._model_args_changed[name] = value

    def config_optimizer_applied(self, replaced: bool) -> None:
        if not replaced or self.quiet or self.subcommand in EVALUATION_SUBCOMMANDS:
            return  # (validate/test/predict build it, as LightningCLI does, and never step it)
        section = self.config.get(self.subcommand or "", self.config)
        given = [
            f"{key} {class_path_of(section.get(key))}"
            for key in ("optimizer", "lr_scheduler")
            if section.get(key)
        ]
        print(
            f"litforge: note: the config's {' and '.join(given)} replace{'s' if len(given) == 1 else ''} "
            f"{type(self.model).__name__}.configure_optimizers()",
            file=sys.stderr,
        )

    def _origin_of(self, name: str) -> str:
        """Where the model argument ``name`` got its value before a checkpoint's: a config, or the class."""
        line = self.command_line
        if line.sets(f"model.init_args.{name}") or line.sets(f"model.{name}"):
            return "configured"
        packaged = not line.complete and not line.has_config and not line.names_class("model")
        return "the packaged default" if packaged else "the class default"

    def instantiate_classes(self) -> None:
        if self.parse_only or self.finished_run is not None:  # a finished run: run_subcommand only reports
            return
        try:
            super().instantiate_classes()
            seed = self.config_value(self.config, "seed_everything")
            if seed is not False and rank_zero_only.rank == 0:
                logging.getLogger(L.seed_everything.__module__).info(f"Seed set to {seed}")
        except Exception as error:
            # A litforge error from inside (e.g. an unreachable Hub model) is already one clear line.
            if (cause := litforge_cause(error)) is not None:
                raise cause from None
            raise BuildFailed.from_exception(
                error,
                place=lambda built: configured_place(built, self.command_line),
                model_args=dict(_model_init_args(self.config).items()),
            ) from error

    # -- run folder --------------------------------------------------------------------------------
    def _resolve_run(self, subcommand: str, config: Namespace) -> RunDir:
        if subcommand != "fit":
            return resolve_evaluation_run(subcommand, config, self.command_line.typed_value("--model"))
        limits = tuple(key for key in ("max_epochs", "max_steps") if self.command_line.sets(f"trainer.{key}"))
        fit = resolve_fit_run(config, limits)
        self.finished_run, self._new_folder = fit.finished, fit.new_folder
        if config.get("ckpt_path") and fit.finished is None and config.get("resume") not in (None, "never"):
            note_data_changed_since(fit.run, config, self.command_line.config_files)
            keep_the_runs_monitor(fit.run, config, self.command_line)
        return fit.run

    # -- trainer -----------------------------------------------------------------------------------
    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer | None:
        if self.run_dir is None:  # run=False: only the model and datamodule are wanted
            return None
        if self.subcommand:
            _check_model_can(self.subcommand, self.model)  # before the trainer prints its start-up lines
        if ckpt_path := self.config_value(self.config, "ckpt_path"):
            check_checkpoint_fits(Path(ckpt_path), self.model, self._model_args_changed)
        subcommand = self.subcommand or "fit"
        trainer_config = self.config_value(self.config_init, "trainer", default={})
        if subcommand == "predict":
            kwargs.update(_one_predicting_process(trainer_config))
        _refuse_other_devices_than_torchruns(trainer_config)
        given = list(as_list(trainer_config.get("callbacks")))
        stated = stated_callback_modes(self.command_line)
        monitor, monitor_mode, monitor_note = best_checkpoint_monitor(
            given,
            self.config_value(self.config, "monitor"),
            self.config_value(self.config, "monitor_mode"),
            self.model,
            mode_typed=self.command_line.typed_value("--monitor_mode") is not None,
            stated=stated,
        )
        if subcommand == "fit" and rank_zero_only.rank == 0:
            notes = [*unstated_mode_notes(configured_monitors(given), stated), monitor_note]
            for note in filter(None, notes):
                print(f"litforge: note: {note}", file=sys.stderr)
        defaults = default_callbacks(
            self.run_dir,
            subcommand,
            trainer_config,
            given=given,
            monitor=monitor,
            monitor_mode=monitor_mode,
            monitor_typed=self.command_line.typed_value("--monitor") == monitor,
            every_n_train_steps=self.config_value(
                self.config, "checkpoint_every_n_steps", DEFAULT_EVERY_N_STEPS
            ),
            every_n_minutes=self.config_value(self.config, "checkpoint_every_n_minutes"),
            quiet=self.quiet,
        )
        # best/last after the config's ModelCheckpoints (Lightning runs checkpoint callbacks last, in order):
        # the run's best.ckpt/last.ckpt then hold their top-k as of that epoch, so a resume from them keeps
        # their save_top_k (saved before them, a resumed ModelCheckpoint forgot its last file and kept one more)
        run_checkpoints = [c for c in defaults if isinstance(c, RunCheckpoint)]
        others = [c for c in defaults if not isinstance(c, RunCheckpoint)]
        kwargs["callbacks"] = given + run_checkpoints + others + self.extra_callbacks
        if subcommand == "fit":
            self._stopping_note = ModelEarlyStoppingNote(given, monitor, quiet=self.quiet)
            kwargs["callbacks"].append(self._stopping_note)
        if subcommand == "fit" and self._model_args_changed:  # the optimizer follows them, not the checkpoint
            kwargs["callbacks"].append(ChangedOptimizerSettings(self._model_args_changed))
        elif subcommand == "fit" and ckpt_path and self.command_line.types_optimizer:
            kwargs["callbacks"].append(ChangedOptimizerSettings())  # --optimizer.lr on a resume: it, too
        config_folder = self.run_dir.path if subcommand == "fit" else self.run_dir.path / subcommand
        if is_run_owner() and (subcommand != "fit" or self._new_folder is None):
            self._folder_before = FolderSnapshot.take(config_folder)
            self._checkpoints_before = _checkpoint_names(self.run_dir.checkpoints)
            if subcommand == "fit":
                kwargs["callbacks"].append(self._start_step)
        self.save_config_kwargs["folder"] = str(config_folder)
        # The Trainer's own root is the run folder (the config's default_root_dir is the root of all runs):
        # with trainer.logger false, a ModelCheckpoint of the config then writes into <run>/checkpoints/,
        # not into the working folder.
        kwargs["default_root_dir"] = str(self.run_dir.path)
        configured = trainer_config.get("logger")
        if configured is not False:
            defaults = default_loggers(self.run_dir, subcommand)
            extra = [] if configured in (None, True) else as_list(configured)
            # TensorBoard + CSV first: they keep the run folder as ``trainer.log_dir`` next to any tracker.
            # A configured logger of either kind replaces litforge's default of that kind.
            kinds = (TensorBoardLogger, CSVLogger)
            kwargs["logger"] = [
                d for d in defaults if not any(isinstance(d, k) and has_instance(extra, k) for k in kinds)
            ] + extra
        if trainer_config.get("profiler") is not None:
            kwargs["profiler"] = run_folder_profiler(
                trainer_config["profiler"], self.run_dir.path / "profiler"
            )
        plugins = as_list(trainer_config.get("plugins"))
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]
        try:
            return super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ImportError) as error:  # e.g. accelerator gpu or tpu on a CPU box
            raise UsageError(f"trainer: {error}") from error

    def run_subcommand(self, subcommand: str) -> None:
        if self.parse_only:
            return
        if subcommand == "fit" and self.finished_run is not None:  # nothing was built (no trainer)
            if is_run_owner() and not self.quiet:
                print(
                    f"run {self.run_dir.path if self.run_dir else '?'} already finished at step "
                    f"{self.finished_run.get('global_step')}; nothing to do ({further_hint(self.finished_run)})",
                    flush=True,
                )
            return
        ckpt_path = self.config_value(self.config, "ckpt_path")
        if ckpt_path:
            note_if_unverified(Path(ckpt_path))
        # One process per run folder; DDP ranks that rank 0 started share its run and take no lock.
        lock = RunLock(self.run_dir.path) if subcommand == "fit" and self.run_dir and is_run_owner() else None
        try:
            if lock is not None:
                lock.acquire()  # RunInUse (exit 2) names the process that holds it
                remove_killed_writes(self.run_dir.checkpoints)
            init_process_group_for_restart(self.trainer)
            self.run_lightning_subcommand(subcommand)
        except SIGTERMException:  # Lightning's own handler fired before litforge's took over
            raise Preempted("terminated by SIGTERM before training started; no checkpoint written") from None
        except SystemExit:
            if not self.trainer.interrupted:
                raise
            # Ctrl+C outside litforge's save-then-stop (before training, or a second Ctrl+C): Lightning
            # shut down and called sys.exit(1)
            self._forget_unstarted_run()
            self._forget_failed_command()
            raise Interrupted(
                "interrupted by Ctrl+C; no checkpoint saved at this point (--resume auto continues from "
                "the newest one)"
            ) from None
        except Exception as error:
            if lock is None or lock.held:  # a refused lock leaves the other process's folder alone
                self._forget_unstarted_run()
            if not isinstance(error, Preempted):  # a stop that saved (SIGTERM, Ctrl+C) keeps what it saved
                self._forget_failed_command()
            if (conflict := hparams_conflict(error, self.model, self.datamodule)) is not None:
                raise UsageError(conflict) from error
            raise
        finally:
            if lock is not None:
                lock.release()

    def _forget_unstarted_run(self) -> None:
        """Remove the run folder of a fit that failed before its first step, or of a resume into a new
        folder that failed before saving anything there: nothing in it is worth keeping, and a leftover
        folder would make the same ``--run`` look taken."""
        if self._new_folder is None or self.subcommand != "fit" or not self.trainer.is_global_zero:
            return
        resumed_into_it = bool(self.config_value(self.config, "ckpt_path"))
        nothing_saved = not any(self._new_folder.glob("checkpoints/*.ckpt"))
        if self.trainer.global_step == 0 or (resumed_into_it and nothing_saved):
            remove_made_run(self.run_dir.path, self._new_folder)

    def _forget_failed_command(self) -> None:
        """A test/predict/validate that failed leaves its ``<run>/<subcommand>/`` folder as it found it; so
        does a fit in an existing run that failed before it trained a step (a refused resume, a scheduler
        that cannot go on): its config.yaml, hparams.yaml and finished.json are put back and a checkpoint it
        added (on_exception.ckpt, at the step it started from) goes, so the next ``--resume auto`` finds the
        run as it was."""
        if self._folder_before is None:
            return
        if self.subcommand == "fit":
            started = self._start_step.step
            if started is not None and self.trainer.global_step > started:
                return  # it trained: what it saved is worth keeping
            for name in _checkpoint_names(self.run_dir.checkpoints) - self._checkpoints_before:
                (self.run_dir.checkpoints / name).unlink(missing_ok=True)
        self._folder_before.restore()

    def before_fit(self) -> None:
        if self.trainer.fast_dev_run:  # a smoke test neither replaces a run nor reopens a finished one
            return
        if self.run_dir is not None and self.trainer.is_global_zero:
            if self.config_value(self.config, "overwrite") and self.run_dir.holds_a_run():
                checkpoints = len(list(self.run_dir.checkpoints.glob("*.ckpt")))
                outputs = [
                    f"{name}/" if (self.run_dir.path / name).is_dir() else name
                    for name in ("export", "predictions.csv", "validate", "test", "predict")
                    if (self.run_dir.path / name).exists()
                ]
                also = f", and its {', '.join(outputs)}" if outputs else ""
                print(
                    f"litforge: note: --overwrite replaces run {self.run_dir.path}: its {checkpoints} "
                    f"checkpoint(s), metrics and config are removed{also}",
                    file=sys.stderr,
                )
                self.run_dir.clear()
            clear_finished(self.run_dir.path)

    def after_fit(self) -> None:
        if self.trainer.fast_dev_run:
            self._smoke_test_done()
            return
        self._report(f"run folder: {self.run_dir.path if self.run_dir else '?'}")
        if self.run_dir is not None and self.trainer.is_global_zero and not self.trainer.interrupted:
            mark_finished(self.run_dir.path, finish_record(self.trainer))
        stopper = self.trainer.early_stopping_callback
        if stopper is not None and stopper.stopped_epoch > 0:
            if self._stopping_note is not None and self._stopping_note.from_model(stopper):
                where = f" ({type(self.model).__name__}.configure_callbacks()'s EarlyStopping)"
            elif _configures_callbacks(self.command_line):
                where = ""
            else:
                where = " (the packaged default's EarlyStopping: set trainer.callbacks to change it)"
            # it would have ended there anyway
            last_epoch = stopper.stopped_epoch + 1 == self.trainer.max_epochs
            # a score under Lightning's default mode min: "improve" would read as higher (a note said so)
            improve = (
                "fall (mode min)"
                if stopper.mode == "min" and mode_by_name(str(stopper.monitor))
                else "improve"
            )
            max_epochs, max_steps = self.trainer.max_epochs, self.trainer.max_steps
            if last_epoch:
                ending = f"as training reached its last epoch, {max_epochs}{where}"
            elif max_epochs in (None, -1):  # a run by steps
                of = f" of {max_steps}" if max_steps not in (None, -1) else ""
                ending = f"so training stopped at step {self.trainer.global_step}{of} (in epoch {stopper.stopped_epoch + 1}){where}"
            else:
                ending = f"so training stopped after epoch {stopper.stopped_epoch + 1} of {max_epochs}{where}"
            self._report(
                f"early stopping: {stopper.monitor} did not {improve} for {stopper.patience} validation checks, "
                + ending
            )
        run_checkpoints = [c for c in self.trainer.checkpoint_callbacks if isinstance(c, RunCheckpoint)]
        best = run_checkpoints[0].best_model_path if run_checkpoints else ""
        if best:
            self._report(f"best checkpoint: {best}")

    def _smoke_test_done(self) -> None:
        """``--trainer.fast_dev_run``: a few batches of each loop ran. Nothing of it is kept: no checkpoint,
        no ``finished.json`` (a later ``--resume auto`` would take it for the run's end), and a run folder it
        made is removed (it held no config.yaml, which test and predict need)."""
        batches = self.trainer.fast_dev_run
        kept = "nothing is kept"
        # --overwrite names a run folder even when it holds an earlier run (config.yaml): that one is kept
        made_it = self._new_folder is not None and not (self._new_folder / "config.yaml").exists()
        if made_it and self.trainer.is_global_zero:
            remove_made_run(self.run_dir.path, self._new_folder)
            kept = f"nothing is kept ({self._new_folder} removed)"
        self._report(
            f"fast_dev_run: {batches if batches is not True else 1} batch(es) of each loop ran; {kept} "
            "(a smoke test: drop --trainer.fast_dev_run to train the run)"
        )

    def after_predict(self) -> None:
        if self.run_dir is not None:
            self._report(f"predictions: {self.run_dir.path / 'predictions.csv'}")

    def _report(self, line: str) -> None:
        if self.trainer.is_global_zero and not self.quiet:
            print(line, flush=True)


def _checkpoint_names(folder: Path) -> set[str]:
    return {path.name for path in folder.glob("*.ckpt")}


class StepAtTrainStart(L.Callback):
    """The global step a fit starts training from (after a resume's restore); ``None`` before that."""

    def __init__(self) -> None:
        self.step: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.step = trainer.global_step


def _check_model_can(subcommand: str, model: L.LightningModule) -> None:
    """Refuse validate/test of a module without the step they run, in one line (exit 2), before anything
    runs (Lightning raises it from deep inside the trainer, which read as a failed job)."""
    steps = {"validate": "validation_step", "test": "test_step"}
    supported = [name for name, step in steps.items() if is_overridden(step, model, parent=L.LightningModule)]
    if subcommand in steps and subcommand not in supported:
        step = steps[subcommand]
        raise UsageError(
            f"'litforge {subcommand}': {type(model).__name__} defines no {step}(), so there is nothing to "
            f"{subcommand}; add {step} to the module, or use {' or '.join([*supported, 'predict'])}"
        )


def _model_init_args(config: Namespace) -> Any:
    """The ``model.init_args`` namespace of a parsed config (an empty one when it has none)."""
    section = config.get(config["subcommand"]) if config.get("subcommand") else config
    model = section.get("model") if isinstance(section, Namespace) else None
    init_args = model.get("init_args") if isinstance(model, Namespace) else None
    return init_args if isinstance(init_args, Namespace) else Namespace()


_OPTIMIZER_GROUP_TITLES = {
    "optimizer": "optimizer from the config: replaces the model's configure_optimizers() (docs/cli.md)",
    "lr_scheduler": "LR scheduler of the config's optimizer",
}


def _note_packaged_class(line: CommandLine) -> None:
    """A user's own model with no data named anywhere gets the packaged digits data, and a user's own data
    with no model named anywhere trains the packaged classifier: say so, once."""
    if line.asks_help or line.names_class("model") == line.names_class("data"):
        return
    given, missing = ("model", "data") if line.names_class("model") else ("data", "model")
    named = line.named_classes.get(given)
    if _is_litforge_class(named, given):
        return
    flags = [
        arg.split("=")[0] for arg in line.args if arg.startswith("--") and not arg.startswith(f"--{missing}")
    ]
    if difflib.get_close_matches(f"--{missing}", flags, n=1, cutoff=0.7):
        return  # a mistyped --data (--dat, --date): its own error comes next, not a note about digits
    base = L.LightningModule if given == "model" else L.LightningDataModule
    if os.environ.get("LOCAL_RANK", "0") == "0" and _names_a(base, named):
        takes = "gets" if missing == "data" else "trains"
        print(
            f"litforge: note: no --{missing} given: {named} {takes} the packaged {default_class_path(missing)} "
            f"(pass --{missing} CLASS for your own)",
            file=sys.stderr,
        )


def _types_callbacks(line: CommandLine) -> bool:
    return any(arg.startswith("--trainer.callbacks") for arg in line.args)


def _configures_callbacks(line: CommandLine) -> bool:
    """Whether the trainer's callbacks are the user's (a config file, ``--trainer.callbacks``), not the
    packaged default's."""
    return line.has_config or _types_callbacks(line)


def _refuse_other_devices_than_torchruns(trainer: Any) -> None:
    """Under torchrun every process must be one of ``devices``: ``--nproc_per_node 2`` with the default
    ``devices`` (one on a CPU) failed in Lightning as ``IndexError: list index out of range``."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    devices, accelerator = trainer.get("devices"), trainer.get("accelerator")
    if processes < 2 or isinstance(devices, (list, tuple)):
        return
    counted = int(devices) if isinstance(devices, int) or str(devices).lstrip("-").isdigit() else None
    if (counted is not None and counted not in (-1, processes)) or (
        devices in (None, "auto") and accelerator == "cpu"
    ):
        raise UsageError(
            f"--trainer.devices {devices}: torchrun started {processes} processes on this node "
            f"(--nproc_per_node {processes}); pass --trainer.devices {processes}"
        )


def _one_predicting_process(trainer: Any) -> dict[str, Any]:
    """The trainer settings of a predict: one process. Under DDP each process predicts its share of the
    batches (every other sample, padded to equal shares) and predictions.csv held rank 0's half, numbered as
    if whole; a run trained on several devices predicts on one, with a note."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError(
            "predict: under torchrun each process would predict its share of the samples, and "
            "predictions.csv holds one file's rows in order: run `litforge predict` as one process"
        )
    devices, nodes = trainer.get("devices"), trainer.get("num_nodes")
    if asks_several_processes(devices, nodes) and os.environ.get("LOCAL_RANK", "0") == "0":
        print(
            f"litforge: note: predict runs as one process (the config asks devices {devices}"
            f"{f', num_nodes {nodes}' if isinstance(nodes, int) and nodes > 1 else ''}): predictions.csv "
            "holds every sample once, in the loader's order",
            file=sys.stderr,
        )
    return {"devices": 1, "num_nodes": 1, "strategy": "auto"}


def _note_validation_interval_in_batches(trainer: Any) -> None:
    """``val_check_interval: 50`` with ``accumulate_grad_batches: 2`` validates every 25 optimizer steps:
    Lightning counts the interval in training batches, where a run by steps reads steps."""
    interval = trainer.get("val_check_interval") if trainer is not None else None
    accumulate = trainer.get("accumulate_grad_batches") if trainer is not None else None
    if not (isinstance(interval, int) and isinstance(accumulate, int) and interval > 0 and accumulate > 1):
        return
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(
            f"litforge: note: val_check_interval {interval} counts training batches, not optimizer steps: with "
            f"accumulate_grad_batches {accumulate} it validates every {interval / accumulate:g} optimizer steps "
            f"(--trainer.val_check_interval {interval * accumulate} for every {interval})",
            file=sys.stderr,
        )


def _note_config_without_trainer(line: CommandLine) -> None:
    """A ``--config`` replaces the packaged default's trainer settings (seed 42, max_epochs 30, EarlyStopping,
    CPU) with Lightning's (1000 epochs, no early stop) and seed 0: a config of model arguments alone made
    that switch silently. Say so when no config file sets a ``trainer`` or ``seed_everything``, naming the
    defaults that apply (not one the command line types)."""
    if (
        not line.has_config
        or line.asks_help
        or line.sets("trainer", overlays=False)
        or line.sets("seed_everything")
    ):
        return
    applying = [
        *([] if line.sets("trainer.max_epochs") or line.sets("trainer.max_steps") else ["max_epochs 1000"]),
        *([] if _types_callbacks(line) else ["no EarlyStopping"]),
        f"seed {os.environ.get('PL_GLOBAL_SEED', 0)}",  # Lightning's seed_everything() with no seed given
    ]
    if os.environ.get("LOCAL_RANK", "0") == "0":
        files = ", ".join(str(path) for path in line.base_config_files)
        print(
            f"litforge: note: {files} sets no trainer: Lightning's trainer defaults apply "
            f"({', '.join(applying)}), not the packaged default's; add a trainer: section (`litforge fit "
            "--print_config` without -c shows the packaged one)",
            file=sys.stderr,
        )


def _names_a(base: type, named: str | None) -> bool:
    """Whether ``named`` imports as a subclass of ``base`` (the parser imports it next; one that does not
    gets its one-line error, without a note about the packaged class before it)."""
    module_name, _, class_name = (named or "").rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except Exception:
        return False
    return isinstance(found, type) and issubclass(found, base)


def _is_litforge_class(named: str | None, section: str) -> bool:
    """Whether the model or data class is one of litforge's (by short name or path); ``None``: the default."""
    if named is None:
        return True
    import litforge.data
    import litforge.models

    packaged = litforge.models if section == "model" else litforge.data
    return named.startswith("litforge.") or named in packaged.__all__


def _accept_trainer_method_options(parser: LightningArgumentParser) -> None:
    """Add the Trainer-method options (``ckpt_path``, ``verbose``, ...) the parser does not have yet."""
    for name, (kind, default, help_text) in _TRAINER_METHOD_OPTIONS.items():
        try:
            parser.get_default(name)
        except KeyError:
            parser.add_argument(f"--{name}", type=kind, default=default, help=help_text)
