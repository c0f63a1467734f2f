"""Where a command's run lives: the run folder of a fit (new, resumed, refused) and the checkpoint and run
of validate/test/predict, including a bare checkpoint that brings its run's config.

litforge fit --run my-run --resume auto          # continue my-run (with its config.yaml), or start it
litforge test --run my-run                       # the run's best.ckpt with its own config.yaml
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonargparse import Namespace

from litforge.callbacks.monitor_mode import class_monitor_mode
from litforge.engine.checkpoint_fit import check_same_model_class, read_hyperparameters
from litforge.engine.config_sources import (
    CommandLine,
    class_path_of,
    default_class_path,
    read_config_file,
    scan,
)
from litforge.engine.run_dir import (
    CHECKPOINT_ALIASES,
    DEFAULT_ROOT,
    RunDir,
    check_run_name,
    experiment_name,
    locate_checkpoint,
    next_free_run,
    run_of_config,
)
from litforge.errors import UsageError
from litforge.resilience.resume import read_finished, resolve_resume, trains_further
from litforge.resilience.run_lock import RunLock, is_run_owner

# "<rank 0 pid>:<run folder>:<resume checkpoint>": rank 0 hands its decisions to the DDP ranks it starts
# (their only channel: they are new processes running the same command line).
LAUNCHED_RUN_ENV = "LITFORGE_LAUNCHED_RUN"


@dataclass(frozen=True)
class FitRun:
    """Where a fit trains, and what it found there."""

    run: RunDir
    finished: dict[str, Any] | None = None  # --resume auto on a finished run: its finished.json
    new_folder: Path | None = None  # the outermost folder it made: a fit failing before its first step
    # removes its run folder and the folders above it up to this one, those left empty (remove_made_run)


def _root_and_experiment(config: Namespace) -> tuple[Path, str]:
    for key in ("experiment", "run"):
        if config.get(key) is not None:
            check_run_name(config[key], f"--{key}")
    root = Path(config.trainer.default_root_dir or DEFAULT_ROOT)
    return root, config.experiment or experiment_name(class_path_of(config.model))


def _check_can_hold_runs(root: Path) -> None:
    """Refuse a runs root (``trainer.default_root_dir``) under a file or an unwritable folder before
    anything is built or written."""
    existing = next(folder for folder in (root, *root.parents) if folder.exists() or folder == folder.parent)
    if not existing.is_dir():
        raise UsageError(f"runs folder {root} (trainer.default_root_dir): {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"runs folder {root} (trainer.default_root_dir): {existing} is not writable")


def resolve_fit_run(config: Namespace, limits_set: tuple[str, ...] = ()) -> FitRun:
    """The run folder of a fit and, with ``--resume``, the checkpoint it continues from (set as
    ``config.ckpt_path``). Refuses a folder that already holds a run unless resumed or overwritten.

    ``limits_set``: the trainer limits (``max_epochs``, ``max_steps``) that the user set; only those train
    a finished run on (a packaged default of 30 epochs is no request for a longer run)."""
    root, experiment = _root_and_experiment(config)
    parent, path, ckpt = (os.environ.get(LAUNCHED_RUN_ENV) or "::").split(os.pathsep, 2)
    # A DDP rank that rank 0 started (Lightning gives it LOCAL_RANK >= 1): use rank 0's decisions.
    # Any other child of a litforge process (a tune worker) picks its own run folder.
    if os.environ.get("LOCAL_RANK", "0") != "0" and parent == str(os.getppid()):
        config.ckpt_path = ckpt or None
        return FitRun(RunDir(Path(path).parent.parent, Path(path).parent.name, Path(path).name))
    _check_can_hold_runs(root)
    run = RunDir(root, experiment, config.run or next_free_run(root, experiment))
    if is_run_owner():  # a fit of this run in another process: refused before its folder is read
        RunLock(run.path).refuse_if_held()
    finished = None
    resume = config.resume or "never"
    if resume != "never":
        if config.get("ckpt_path"):
            raise UsageError("--resume and --ckpt_path both say where to start from; pass only one")
        if config.overwrite:
            raise UsageError("--resume continues a run and --overwrite replaces it; pass only one")
        finished = read_finished(run.path) if resume == "auto" else None
        trainer = config.get("trainer") or {}
        asked = {key: trainer.get(key) if key in limits_set else None for key in ("max_epochs", "max_steps")}
        further = finished and trains_further(finished, asked["max_epochs"], asked["max_steps"])
        if further:  # a longer run asked for: train on from the newest checkpoint
            print(f"litforge: note: run {run.path} had finished; {further} trains it on", file=sys.stderr)
            finished = None
        resume_from = resolve_resume(resume, run.checkpoints, run_is_fixed=bool(config.run))
        config.ckpt_path = str(resume_from) if resume_from else None
        # "the newest": a best.ckpt saved last is not a rewind to the best epoch
        newest = ", the newest checkpoint" if resume == "auto" else ""
        note = f"resuming from {resume_from}{newest}" if resume_from else "no checkpoint yet, starting fresh"
        if os.environ.get("RANK", "0") == "0" and finished is None:
            print(f"litforge: {note} (run {run.path})", file=sys.stderr, flush=True)
    elif config.get("ckpt_path"):
        _check_fit_checkpoint_file(config.ckpt_path)
    if resume == "never" and run.holds_a_run() and not config.overwrite:
        unsaved = not any(run.checkpoints.glob("*.ckpt"))  # stopped before its first checkpoint
        raise UsageError(
            f"run folder {run.path} already holds a run"
            + (" (stopped before its first checkpoint)" if unsaved else "")
            + ": continue it with --resume auto"
            + (" (it starts again from step 0)" if unsaved else "")
            + ", choose another --run name, or replace it with --overwrite"
        )
    os.environ[LAUNCHED_RUN_ENV] = os.pathsep.join(
        (str(os.getpid()), str(run.path), config.get("ckpt_path") or "")
    )
    return FitRun(run, finished, run.path if config.overwrite else _first_missing(run.path))


def _check_fit_checkpoint_file(ckpt_path: str) -> None:
    """``fit --ckpt_path`` takes a checkpoint file: a name (``last``), a folder or a missing file is refused
    before the trainer is built, with the ``--resume`` form that does what was meant."""
    path = Path(ckpt_path)
    if path.is_file():
        return
    if path.is_dir():
        raise UsageError(
            f"--ckpt_path {ckpt_path} is a folder; fit takes a checkpoint file (--resume {ckpt_path} "
            "continues from the newest valid checkpoint in it)"
        )
    if ckpt_path in ("best", "last", "hpc") or ckpt_path.lower().startswith("registry"):
        raise UsageError(
            f"fit --ckpt_path takes a checkpoint file, not {ckpt_path!r}; to continue a run use "
            "--run NAME --resume auto"
        )
    raise UsageError(f"--ckpt_path: no such checkpoint file: {ckpt_path}")


def resolve_evaluation_run(subcommand: str, config: Namespace, typed_model: str | None = None) -> RunDir:
    """validate/test/predict: the checkpoint (``best``/``last``/a path, set as ``config.ckpt_path``) and the
    run folder their outputs go to (the checkpoint's run, else a new one). ``typed_model``: the class a
    ``--model`` flag named, blamed when it is not the checkpoint's."""
    root, experiment = _root_and_experiment(config)
    for option in ("resume", "overwrite"):
        if config.get(option) not in (None, False, "never"):
            raise UsageError(f"--{option} is an option of 'litforge fit', not of '{subcommand}'")
    run, ckpt = locate_checkpoint(
        root, experiment, config.run, config.get("ckpt_path"), experiment_given=bool(config.experiment)
    )
    typed = {
        "config_name": "--model",
        "hint": "drop --model: the run's config.yaml brings its own model and data",
    }
    check_same_model_class(
        ckpt, _saved_class_path(ckpt), class_path_of(config.model), **(typed if typed_model else {})
    )
    config.ckpt_path = str(ckpt)
    return run or RunDir(root, experiment, config.run or next_free_run(root, experiment))


def with_run_config(line: CommandLine) -> CommandLine:
    """validate/test/predict without a config that names a model: a checkpoint inside a run folder brings
    that run's ``config.yaml`` (its model *and* data); the user's own config files (``-c small.yaml`` of
    trainer or init-arg settings) and flags still apply on top of it."""
    if line.asks_help:
        return line
    if line.has_config and line.names_class("model"):
        return _with_config_runs_checkpoint(line)
    flags = line.run_flags
    named_model = line.named_classes.get("model")
    experiment = flags.get("--experiment") or experiment_name(named_model or default_class_path("model"))
    run, ckpt = locate_checkpoint(
        Path(flags.get("--trainer.default_root_dir") or DEFAULT_ROOT),
        experiment,
        flags.get("--run"),
        flags.get("--ckpt_path"),
        experiment_given="--experiment" in flags,
        any_experiment="--experiment" not in flags and named_model is None,
        model_class=named_model if named_model and "." in named_model else None,
    )
    if run is not None and run.config.is_file():
        return scan(["--config", str(run.config), *line.args, "--ckpt_path", str(ckpt)])
    if not (line.names_class("model") and line.names_class("data")):
        saved = _saved_class_path(ckpt)
        if saved != default_class_path("model") or line.names_class("model"):
            raise UsageError(
                f"--ckpt_path {ckpt} is not inside a run folder (no config.yaml next to its checkpoints/ "
                f"folder), so litforge cannot tell which model and data it belongs to: pass the run's "
                "config (--config path/to/config.yaml) or both --model CLASS and --data CLASS"
            )
    return line


def _with_config_runs_checkpoint(line: CommandLine) -> CommandLine:
    """``--config <run>/config.yaml`` with no checkpoint named, or with ``--ckpt_path best|last``: that run's
    best (else last) checkpoint, or the one named, never the experiment's most recent (maybe another run's).
    A run without it is refused rather than evaluated with another run's weights."""
    given = line.run_flags.get("--ckpt_path")
    if "--run" in line.run_flags or line.recorded_ckpt_paths:
        return line
    if given is not None and given not in CHECKPOINT_ALIASES:
        return line
    runs = [found[0] for path in line.config_files if (found := run_of_config(path))]
    if not runs:
        return line
    run = runs[-1]
    aliases = (given,) if given else CHECKPOINT_ALIASES
    ckpt = next((run.checkpoint(a) for a in aliases if run.checkpoint(a).is_file()), None)
    if ckpt is None:
        wanted = " or ".join(f"{alias}.ckpt" for alias in aliases)
        present = sorted(p.name for p in run.checkpoints.glob("*.ckpt")) if run.checkpoints.is_dir() else []
        raise UsageError(
            f"--config {run.config}: run {run.run} has no {wanted} (checkpoints there: "
            f"{', '.join(present) or 'none'}); name one with --ckpt_path FILE"
        )
    return scan([*line.args, "--ckpt_path", str(ckpt)])


def with_resumed_runs_config(line: CommandLine) -> CommandLine:
    """fit ``--run NAME --resume ...`` naming no model (in a flag or a config file): the run's own
    config.yaml, so a resumed run keeps its model, data and settings (config files that name no model, such
    as ``-c more.yaml`` of trainer settings, and typed flags still apply on top), found in the experiment
    that holds NAME, as test finds it. Without this, such a fit resumed the packaged default in
    ``runs/classifier/NAME`` whatever the run had trained."""
    resume = line.typed_value("--resume")
    name = line.run_flags.get("--run")
    if line.asks_help or line.names_class("model") or resume in (None, "never") or not name:
        return line
    root = Path(line.run_flags.get("--trainer.default_root_dir") or DEFAULT_ROOT)
    experiment = line.run_flags.get("--experiment")
    homes = [experiment] if experiment else _experiments_holding(root, name)
    homes = [home for home in homes if RunDir(root, home, name).config.is_file()]
    if len(homes) > 1:
        raise UsageError(f"--run {name} exists in several experiments ({', '.join(homes)}): add --experiment")
    if not homes:
        _refuse_a_misspelt_run(root, name, experiment)
        return line  # a new run: --resume auto starts it
    config = RunDir(root, homes[0], name).config
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(f"litforge: note: --resume continues {config.parent} with its config.yaml", file=sys.stderr)
    return scan(["--config", str(config), *line.args])


def appended_once_on_resume(trainer: Namespace, line: CommandLine) -> None:
    """A resume re-run with the command line that made the run (``fit --run r --resume auto
    --trainer.callbacks+=ModelCheckpoint ...``): the run's config.yaml already holds what the typed ``+=``
    appended, so appending again would add a second one (Lightning refuses two ``ModelCheckpoint`` or
    ``EarlyStopping`` of one metric). Of the callbacks and loggers appended on top of the run's config.yaml,
    one equal to a recorded one is dropped, and one of a class and monitored metric the run has once, with
    other arguments, replaces it (a note names what changed); the rest are appended."""
    if line.typed_value("--resume") in (None, "never") or not line.config_files:
        return
    if run_of_config(line.config_files[0]) is None:  # the run's own config.yaml comes first on a resume
        return
    recorded = read_config_file(line.config_files[0]).get("trainer") or {}
    for key in ("callbacks", "logger"):
        items, before = trainer.get(key), recorded.get(key)
        count = len(before) if isinstance(before, list) else 0
        typed = any(arg.startswith(f"--trainer.{key}+") for arg in line.args)
        if not typed or not isinstance(items, list) or len(items) <= count:
            continue
        kept = list(items[:count])
        if [_class_name(item) for item in kept] != [_class_name(item) for item in before]:
            continue  # a typed config file replaced the run's list: nothing was appended twice
        for item in items[count:]:
            alike = [index for index, old in enumerate(kept[:count]) if _identity(old) == _identity(item)]
            if any(kept[index] == item for index in alike):
                continue
            if len(alike) == 1:
                print(
                    f"litforge: note: --trainer.{key}+={_class_name(item)} replaces the run's {_class_name(item)} "
                    f"({_changed_arguments(kept[alike[0]], item)})",
                    file=sys.stderr,
                )
                kept[alike[0]] = item
                continue
            kept.append(item)
        trainer[key] = kept


def _identity(item: Any) -> tuple[str, Any]:
    """A callback's class and monitored metric: two EarlyStoppings of two metrics are two callbacks."""
    return class_monitor_mode(item)[:2]


def _class_name(item: Any) -> str:
    return class_monitor_mode(item)[0]


def _changed_arguments(old: Namespace, new: Namespace) -> str:
    """``save_top_k: 2 -> 3``: the init args whose values differ."""
    before, after = old.get("init_args") or Namespace(), new.get("init_args") or Namespace()
    names = sorted(set(vars(before)) | set(vars(after)))
    return ", ".join(
        f"{n}: {before.get(n)} -> {after.get(n)}" for n in names if before.get(n) != after.get(n)
    )


def refuse_another_experiments_run(line: CommandLine) -> None:
    """fit ``--run NAME`` naming no model (in a flag or a config file) and no experiment, where NAME is only a
    run of another experiment (a model of the user's): it would train the packaged classifier under that
    name, silently."""
    name = line.run_flags.get("--run")
    if line.asks_help or line.names_class("model") or "--experiment" in line.run_flags:
        return
    if not name or line.typed_value("--resume") not in (None, "never"):
        return
    root = Path(line.run_flags.get("--trainer.default_root_dir") or DEFAULT_ROOT)
    default = experiment_name(default_class_path("model"))
    if RunDir(root, default, name).path.exists():
        return
    if homes := _experiments_holding(root, name):
        raise UsageError(
            f"--run {name} is a run of experiment {', '.join(homes)}; this command names no model, so it would "
            f"train the packaged classifier under that name: --resume auto continues {name} with its own "
            f"config, --model/--config names yours, --experiment {default} trains the classifier anyway"
        )


def _refuse_a_misspelt_run(root: Path, name: str, experiment: str | None) -> None:
    """``--run frist --resume auto`` naming no model: no run is called that, but ``first`` is. Starting a new
    run would train the packaged classifier (or ``--experiment``'s) under the typo, silently: refused when
    the close name is a run of another experiment (a model of the user's), noted when it is of the same."""
    this = experiment or experiment_name(default_class_path("model"))
    runs = {path.parent.name: path.parent.parent.name for path in root.glob("*/*/config.yaml")}
    close = (
        difflib.get_close_matches(name, list(runs), n=1, cutoff=0.75)
        or [run for run in sorted(runs) if _one_edit_apart(name, run)][:1]
    )
    if not close:
        return
    where = f"{root / runs[close[0]] / close[0]}"
    if runs[close[0]] != this and experiment is None:
        raise UsageError(
            f"--run {name}: no such run to resume (did you mean {close[0]}, {where}?); nothing was saved under "
            f"{name}: to start it, repeat the command that names your model (--model/--config), or add "
            f"--experiment {this} to train {this} under this name"
        )
    print(
        f"litforge: note: no run {name} yet, so --resume auto starts it (did you mean {close[0]}?)",
        file=sys.stderr,
    )


def _one_edit_apart(typed: str, name: str) -> bool:
    """One letter replaced, added, dropped or two swapped: ``tl``/``t1``, ``c2``/``c1`` (short names score
    too low in ``difflib`` for its cut-off)."""
    if typed == name or abs(len(typed) - len(name)) > 1:
        return False
    if len(typed) == len(name):
        differ = [i for i, (a, b) in enumerate(zip(typed, name, strict=True)) if a != b]
        swapped = len(differ) == 2 and differ[1] == differ[0] + 1 and typed[differ[0]] == name[differ[1]]
        return len(differ) == 1 or (swapped and typed[differ[1]] == name[differ[0]])
    shorter, longer = sorted((typed, name), key=len)
    return any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer)))


def _experiments_holding(root: Path, name: str) -> list[str]:
    """The experiments under ``root`` with a run ``name`` (one that has its config.yaml)."""
    return sorted(path.parent.parent.name for path in root.glob(f"*/{name}/config.yaml"))


def without_runs_starting_point(line: CommandLine) -> CommandLine:
    """fit: a ``ckpt_path`` read from a run folder's config.yaml (the checkpoint a test evaluated, or one a
    resumed fit started from) is not where a new fit starts; it starts fresh unless ``--ckpt_path`` or
    ``--resume`` is typed."""
    if "--ckpt_path" in line.run_flags:
        return line
    recorded = [path for path in line.recorded_ckpt_paths if run_of_config(path)]
    if not recorded:
        return line
    resumed = any(arg.partition("=")[0] == "--resume" for arg in line.args)
    if not resumed and os.environ.get("LOCAL_RANK", "0") == "0":
        print(
            f"litforge: note: {recorded[-1]} records the checkpoint its run started from or evaluated; this "
            "fit starts fresh (continue from a checkpoint with --ckpt_path FILE, or a run with --run NAME "
            "--resume auto)",
            file=sys.stderr,
        )
    return scan([*line.args, "--ckpt_path", "null"])


def _saved_class_path(ckpt: Path) -> str | None:
    """The model class a checkpoint written through LightningCLI records (``hyper_parameters._class_path``)."""
    return read_hyperparameters(ckpt).get("_class_path")


def remove_made_run(run: Path, outermost: Path) -> None:
    """Remove the run folder a fit made and, up to ``outermost`` (the first that did not exist), the folders
    above it that are left empty. Never the whole of ``outermost``: another process may have put a run of
    its own beside this one meanwhile (the first trials of ``litforge tune --workers 2`` share ``trials/``)."""
    shutil.rmtree(run, ignore_errors=True)
    for folder in (run, *run.parents):
        with contextlib.suppress(OSError):  # not empty (or gone): kept
            folder.rmdir()
        if folder == outermost:
            break


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (``None``: it exists)."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def keep_the_runs_monitor(run: RunDir, config: Namespace, line: CommandLine) -> None:
    """A resume retyped without ``--monitor`` goes on keeping best.ckpt by the run's recorded metric: its
    best-so-far is kept per metric, so another one (``val_loss`` by default) let the next epoch replace a
    better best.ckpt. A ``--monitor`` of another metric is taken, with a note that best.ckpt starts over."""
    if not run.config.is_file():
        return
    try:
        recorded = read_config_file(run.config)
    except UsageError:
        return
    monitor = recorded.get("monitor")
    if not monitor or config.get("monitor") == monitor:
        return
    if line.sets("monitor"):
        note = (
            f"best.ckpt follows {config.get('monitor')} from here on, not the run's {monitor}: the earlier epochs "
            "were not ranked by it, so the next one's checkpoint becomes best.ckpt"
        )
    else:
        config["monitor"] = monitor
        if not line.sets("monitor_mode"):
            config["monitor_mode"] = recorded.get("monitor_mode")
        note = f"best.ckpt keeps following {monitor}, the run's --monitor (--monitor NAME picks another)"
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(f"litforge: note: {note}", file=sys.stderr)


def note_data_changed_since(run: RunDir, config: Namespace, config_files: list[Path]) -> None:
    """A resume whose data settings differ from the run's own config.yaml (a command retyped without a
    ``--data.*`` flag the run was started with) says which, in one note: the run goes on with this command's
    data. Nothing when the run's config.yaml is among the command's config files."""
    if not run.config.is_file() or any(path.resolve() == run.config.resolve() for path in config_files):
        return
    try:
        saved = read_config_file(run.config).get("data")
    except UsageError:
        return
    current = config.get("data")
    current = current.as_dict() if isinstance(current, Namespace) else current
    if not isinstance(saved, dict) or not isinstance(current, dict):
        return
    changes = []
    if saved.get("class_path") != current.get("class_path"):
        changes.append(f"class {saved.get('class_path')} -> {current.get('class_path')}")
    else:
        before, now = saved.get("init_args") or {}, current.get("init_args") or {}
        changes += [
            f"{key} {before.get(key)!r} -> {now.get(key)!r}"
            for key in sorted(set(before) | set(now))
            if before.get(key) != now.get(key)
        ]
    if changes and os.environ.get("LOCAL_RANK", "0") == "0":
        print(
            f"litforge: note: this command's data differs from {run.config}'s: {'; '.join(changes[:5])}"
            f"{' ...' if len(changes) > 5 else ''}; the run goes on with this command's (give the --data "
            "flags of the run, or continue it with `--run NAME --resume auto` alone)",
            file=sys.stderr,
        )
