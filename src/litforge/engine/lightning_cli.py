"""litforge's ``LightningCLI``: the packaged default config, the run folder, clean errors, default callbacks.

Used by ``litforge fit|validate|test|predict``; see ``docs/cli.md``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from litforge import lean_hooks
from litforge.callbacks import (
    CSVPredictionWriter,
    LearningCurves,
    PerfSummary,
    PlainProgressBar,
    RunProgressBar,
)
from litforge.cli.errors import UsageError
from litforge.engine.parsing import (
    DEFAULT_CONFIG,
    LitforgeArgumentParser,
    condense_parser_message,
    litforge_cause,
    quiet_lightning_noise,
    with_default_config,
)
from litforge.engine.run_dir import DEFAULT_ROOT, RunDir, existing_runs, experiment_name, next_free_run
from litforge.engine.trainer_setup import (
    CHECKPOINT_ALIASES,
    LinkedHparamsInstantiator,
    RunConfigCallback,
    as_list,
    check_checkpoint_file,
    class_path_of,
    default_checkpoint,
    default_loggers,
    has_instance,
)
from litforge.loggers.resume import KeepEarlierMetrics
from litforge.profiling import run_folder_profiler
from litforge.resilience import DEFAULT_EVERY_N_STEPS, AtomicCheckpointIO, Preempted, resilience_callbacks
from litforge.resilience.elastic_restart import init_process_group_for_restart
from litforge.resilience.resume import clear_finished, mark_finished, read_finished, resolve_resume

__all__ = [
    "DEFAULT_CONFIG",
    "LitforgeCLI",
    "condense_parser_message",
    "instantiate_model_and_data",
    "with_default_config",
]

# "<rank 0 pid>:<run folder>:<resume checkpoint>", read by the DDP ranks that rank 0 starts
_LAUNCHED_RUN_ENV = "LITFORGE_LAUNCHED_RUN"


class LitforgeCLI(LightningCLI):
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
        self, args: list[str], extra_callbacks: list[Any] | None = None, run: bool = True, quiet: bool = False
    ) -> None:
        import litforge.data
        import litforge.models  # noqa: F401  (registers short names: --model Classifier)

        self.run_dir: RunDir | None = None
        self.finished_run: dict[str, Any] | None = None  # set when --resume auto finds a finished run
        self.extra_callbacks = list(extra_callbacks or [])
        self.quiet = quiet
        quiet_lightning_noise()
        lean_hooks.install()  # Lightning's per-step hook calls without the no-op ones (lean_hooks.py)
        # Build the parser of the subcommand being run only: each costs ~0.1 s of jsonargparse work.
        self._subcommand = args[0] if run and args and args[0] in LightningCLI.subcommands() else None
        args = with_default_config(args, has_subcommand=run)
        sys.argv = [sys.argv[0], *args]  # DDP's launcher starts the other ranks with sys.argv
        super().__init__(
            model_class=L.LightningModule,
            datamodule_class=L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_class=LitforgeArgumentParser,
            save_config_callback=RunConfigCallback,
            save_config_kwargs={"overwrite": True},
            # allow_abbrev=False: a misspelt --trainer.max_epoch must fail, not silently match max_epochs.
            parser_kwargs={"default_env": False, "allow_abbrev": False},
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    _preparing_subcommand: str | None = None

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
        parser.add_argument("--debug", type=bool, default=False, help="Show full tracebacks on errors.")
        # A config that gives only init args (the seed's `model: {hidden_dim, lr}`) means litforge's defaults.
        parser.set_defaults(
            {
                "model": {"class_path": "litforge.models.Classifier"},
                "data": {"class_path": "litforge.data.DigitsDataModule"},
            }
        )
        if self._preparing_subcommand == "fit":
            parser.add_argument(
                "--resume",
                type=str,
                default="never",
                help="auto: continue this run (needs --run) from its newest valid checkpoint, or start it; "
                "a finished run is left alone. never: start fresh. PATH: a checkpoint file or run folder.",
            )
            parser.add_argument(
                "--checkpoint_every_n_steps",
                type=int,
                default=DEFAULT_EVERY_N_STEPS,
                help="Periodic checkpoint interval in optimizer steps (plus every epoch end; 0: epoch ends only).",
            )
        # Sizes the data knows are linked into the model, so they are never stated twice.
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

    def _add_instantiators(self) -> None:
        for key in ("model", "data"):
            self.parser.add_instantiator(
                LinkedHparamsInstantiator(cli=self, key=key),
                L.LightningModule if key == "model" else L.LightningDataModule,
                subclasses=True,
            )

    def _prepare_subcommand_parser(
        self, klass: type, subcommand: str, **kwargs: Any
    ) -> LightningArgumentParser:
        self._preparing_subcommand = subcommand  # lets add_arguments_to_parser add fit-only options
        try:
            return super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        finally:
            self._preparing_subcommand = None

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        if "subcommand" in self.config:
            self.run_dir = self._resolve_run(self.config.subcommand, self.config[self.config.subcommand])

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as error:
            # jsonargparse folds an error raised while building the model/data into its own multi-line
            # message; a litforge error from inside (e.g. an unreachable Hub model) is already one clear line.
            cause = litforge_cause(error)
            if cause is None:
                raise
            raise cause from None

    # -- run folder --------------------------------------------------------------------------------
    def _resolve_run(self, subcommand: str, config: Namespace) -> RunDir:
        root = Path(config.trainer.default_root_dir or DEFAULT_ROOT)
        experiment = config.experiment or experiment_name(class_path_of(config.model))
        if subcommand == "fit":
            return self._resolve_fit_run(root, experiment, config)
        ckpt = config.get("ckpt_path")
        run_name = config.run
        if ckpt is None:
            # Evaluating a freshly initialised model is never what a command-line user means.
            ckpt = self._default_alias(root, experiment, run_name)
        if ckpt in CHECKPOINT_ALIASES:
            if run_name is None:
                runs = [
                    r
                    for r in existing_runs(root, experiment)
                    if RunDir(root, experiment, r).checkpoint(ckpt).is_file()
                ]
                if not runs:
                    raise UsageError(
                        f"--ckpt_path {ckpt}: no run under {root / experiment} has a {ckpt}.ckpt; "
                        "train one with 'litforge fit' or pass a checkpoint path"
                    )
                # the run whose checkpoint was written last, whatever its name
                run_name = max(
                    runs, key=lambda r: RunDir(root, experiment, r).checkpoint(ckpt).stat().st_mtime
                )
            run = RunDir(root, experiment, run_name)
            if not run.checkpoint(ckpt).is_file():
                raise UsageError(f"--ckpt_path {ckpt}: {run.checkpoint(ckpt)} does not exist")
            config.ckpt_path = str(run.checkpoint(ckpt))
            return run
        if ckpt is not None:
            check_checkpoint_file(Path(ckpt))
            in_run = Path(ckpt).resolve().parent
            if (
                run_name is None
                and in_run.name == "checkpoints"
                and (in_run.parent / "config.yaml").is_file()
            ):
                return RunDir(in_run.parent.parent.parent, in_run.parent.parent.name, in_run.parent.name)
        return RunDir(root, experiment, run_name or next_free_run(root, experiment))

    @staticmethod
    def _default_alias(root: Path, experiment: str, run_name: str | None) -> str:
        """``best`` when a run (``--run`` or any) has one, else ``last``; exit 2 when there is neither."""
        runs = [run_name] if run_name else existing_runs(root, experiment)
        for alias in CHECKPOINT_ALIASES:
            if any(RunDir(root, experiment, r).checkpoint(alias).is_file() for r in runs):
                return alias
        where = root / experiment / run_name if run_name else root / experiment
        raise UsageError(
            f"no --ckpt_path given and no checkpoint under {where}; "
            "train with 'litforge fit' or pass --ckpt_path best|last|FILE"
        )

    def _resolve_fit_run(self, root: Path, experiment: str, config: Namespace) -> RunDir:
        """The run folder of a fit and, with ``--resume``, the checkpoint it continues from."""
        parent, path, ckpt = (os.environ.get(_LAUNCHED_RUN_ENV) or "::").split(os.pathsep, 2)
        # A DDP rank that rank 0 started (Lightning gives it LOCAL_RANK >= 1): use rank 0's decisions.
        # Any other child of a litforge process (a tune worker) picks its own run folder.
        ddp_child = os.environ.get("LOCAL_RANK", "0") != "0"
        if ddp_child and parent == str(os.getppid()):
            config.ckpt_path = ckpt or None
            return RunDir(Path(path).parent.parent, Path(path).parent.name, Path(path).name)
        run = RunDir(root, experiment, config.run or next_free_run(root, experiment))
        if config.resume != "never":
            if config.get("ckpt_path"):
                raise UsageError("--resume and --ckpt_path both say where to start from; pass only one")
            self.finished_run = read_finished(run.path) if config.resume == "auto" else None
            resume_from = resolve_resume(config.resume, run.checkpoints, run_is_fixed=bool(config.run))
            config.ckpt_path = str(resume_from) if resume_from else None
            note = f"resuming from {resume_from}" if resume_from else "no checkpoint yet, starting fresh"
            if os.environ.get("RANK", "0") == "0" and self.finished_run is None:
                print(f"litforge: {note} (run {run.path})", file=sys.stderr, flush=True)
        os.environ[_LAUNCHED_RUN_ENV] = os.pathsep.join(
            (str(os.getpid()), str(run.path), config.get("ckpt_path") or "")
        )
        return run

    # -- trainer -----------------------------------------------------------------------------------
    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer | None:
        if self.run_dir is None:  # run=False: only the model and datamodule are wanted
            return None
        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = list(as_list(trainer_config.get("callbacks")))
        callbacks += self._default_callbacks(trainer_config, callbacks) + self.extra_callbacks
        kwargs["callbacks"] = callbacks
        configured = trainer_config.get("logger")
        if configured is not False:
            defaults = default_loggers(self.run_dir, self.subcommand or "fit")
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

    def _default_callbacks(self, trainer_config: dict[str, Any], given: list[Any]) -> list[Any]:
        run = self.run_dir
        assert run is not None
        extra: list[Any] = []
        if trainer_config.get("enable_checkpointing") is not False and not has_instance(
            given, ModelCheckpoint
        ):
            extra.append(default_checkpoint(run, monitor=getattr(self.model, "checkpoint_monitor", None)))
        if trainer_config.get("enable_progress_bar") is not False and not has_instance(given, ProgressBar):
            extra.append(RunProgressBar() if sys.stdout.isatty() else PlainProgressBar())
        if self.subcommand == "fit":
            if not self.quiet:
                extra.append(LearningCurves())
            extra.append(KeepEarlierMetrics())  # a resumed run logs each step once, keeping the earlier ones
            if not has_instance(given, PerfSummary):
                extra.append(PerfSummary(run.path / "perf.json", print_table=not self.quiet))
            extra += resilience_callbacks(
                run.checkpoints,
                every_n_train_steps=self._get(self.config, "checkpoint_every_n_steps", DEFAULT_EVERY_N_STEPS),
                checkpointing=trainer_config.get("enable_checkpointing") is not False,
            )
        if self.subcommand == "predict":
            extra.append(CSVPredictionWriter(run.path / "predictions.csv"))
        return extra

    def _run_subcommand(self, subcommand: str) -> None:
        if subcommand == "fit" and self.finished_run is not None:
            self._report(
                f"run {self.run_dir.path if self.run_dir else '?'} already finished at step "
                f"{self.finished_run.get('global_step')}; nothing to do (delete its finished.json to train on)"
            )
            return
        init_process_group_for_restart(self.trainer)
        try:
            super()._run_subcommand(subcommand)
        except SIGTERMException:  # Lightning's own handler fired before litforge's took over
            raise Preempted("terminated by SIGTERM before training started; no checkpoint written") from None

    def before_fit(self) -> None:
        if self.run_dir is not None and self.trainer.is_global_zero:
            clear_finished(self.run_dir.path)

    def after_fit(self) -> None:
        self._report(f"run folder: {self.run_dir.path if self.run_dir else '?'}")
        if self.run_dir is not None and self.trainer.is_global_zero and not self.trainer.interrupted:
            info = {"global_step": self.trainer.global_step, "epoch": self.trainer.current_epoch}
            mark_finished(self.run_dir.path, info)
        best = getattr(self.trainer.checkpoint_callback, "best_model_path", "")
        if best:
            self._report(f"best checkpoint: {best}")

    def after_predict(self) -> None:
        if self.run_dir is not None:
            self._report(f"predictions: {self.run_dir.path / 'predictions.csv'}")

    def _report(self, line: str) -> None:
        if self.trainer.is_global_zero and not self.quiet:
            print(line, flush=True)


def instantiate_model_and_data(args: list[str]) -> tuple[L.LightningModule, L.LightningDataModule | None]:
    """``--config FILE | --model ... --data ...`` (no subcommand) -> the model and datamodule ``fit`` would
    build: same parser, short names, default config, links and ``seed_everything``, but no trainer."""
    cli = LitforgeCLI(args, run=False)
    return cli.model, cli.datamodule
