"""Where a run's outputs live: ``<root>/<experiment>/<run>/``.

``root`` is ``runs/`` (or ``--trainer.default_root_dir``), ``experiment`` defaults to the model's class
name in lower case and ``run`` to the next free ``version_N``. A fixed ``--run NAME`` finds a run again.
"""

from __future__ import annotations

import difflib
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from litforge.errors import UsageError
from litforge.resilience.run_lock import LOCK_FILE

DEFAULT_ROOT = "runs"
CHECKPOINT_ALIASES = ("best", "last")
_VERSION = re.compile(r"^version_(\d+)$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,127}$")


@dataclass(frozen=True)
class RunDir:
    """A run folder and the well-known files in it."""

    root: Path
    experiment: str
    run: str

    @property
    def path(self) -> Path:
        return self.root / self.experiment / self.run

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    def checkpoint(self, alias: str) -> Path:
        """``best`` or ``last`` -> the file the checkpoint callback writes for it."""
        return self.checkpoints / f"{alias}.ckpt"

    def holds_a_run(self) -> bool:
        """Whether something was already written here (a new fit must not mix into it)."""
        return self.path.is_dir() and any(p.name != LOCK_FILE for p in self.path.iterdir())

    def clear(self) -> None:
        """Delete what the folder holds, except the lock file of the process replacing it."""
        for entry in self.path.iterdir() if self.path.is_dir() else ():
            if entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    @classmethod
    def of_checkpoint(cls, path: Path) -> RunDir | None:
        """The run a checkpoint file lies in (``<root>/<experiment>/<run>/checkpoints/x.ckpt`` next to the
        run's ``config.yaml``), or ``None`` for a checkpoint outside a run folder."""
        folder = path.resolve().parent
        if folder.name != "checkpoints" or not (folder.parent / "config.yaml").is_file():
            return None
        return cls(folder.parent.parent.parent, folder.parent.parent.name, folder.parent.name)


def run_of_config(path: Path) -> tuple[RunDir, str] | None:
    """The run a config.yaml that litforge wrote belongs to, and the subcommand that wrote it:
    ``<run>/config.yaml`` (fit) or ``<run>/<validate|test|predict>/config.yaml``; ``None`` for another file."""
    folder = path.resolve().parent
    if path.name != "config.yaml":
        return None
    if folder.name in ("validate", "test", "predict") and (folder.parent / "checkpoints").is_dir():
        return RunDir(folder.parent.parent.parent, folder.parent.parent.name, folder.parent.name), folder.name
    if (folder / "checkpoints").is_dir():
        return RunDir(folder.parent.parent, folder.parent.name, folder.name), "fit"
    return None


def check_run_name(name: str, flag: str) -> None:
    """Run and experiment names are plain folder names: letters, digits and ``_ . = + -``, not starting
    with a dot (so ``--run ../x`` or ``--run /abs`` cannot write outside the root)."""
    if not _PLAIN_NAME.match(name):
        raise UsageError(
            f"{flag} {name!r}: use a plain name (letters, digits, _ . = + -; no '/', no leading '.'); "
            "the folder is created under the root (--trainer.default_root_dir)"
        )


def root_flag_as_trainers(args: list[str]) -> list[str]:
    """``--root DIR`` (export's name for the folder of runs) as ``--trainer.default_root_dir DIR``, the
    same folder to fit/validate/test/predict/check."""
    return [
        "--trainer.default_root_dir" + arg.removeprefix("--root")
        if arg.partition("=")[0] == "--root"
        else arg
        for arg in args
    ]


def split_run_path(args: list[str]) -> list[str]:
    """``--run EXPERIMENT/RUN`` (as litforge's messages list runs: ``classifier/demo``) ->
    ``--experiment EXPERIMENT --run RUN``. Left as typed when a part is no plain name (``check_run_name`` then
    refuses it).

    Raises:
        UsageError: ``--experiment`` names another experiment.
    """
    typed_experiment = next(
        (a.partition("=")[2] or (args[i + 1] if i + 1 < len(args) else "") for i, a in enumerate(args)
         if a.partition("=")[0] == "--experiment"),
        None,
    )  # fmt: skip
    out: list[str] = []
    rest = iter(args)
    for arg in rest:
        flag, equals, value = arg.partition("=")
        if flag != "--run":
            out.append(arg)
            continue
        value = value if equals else next(rest, None)
        if value is None:  # a trailing --run: argparse says it expects a value
            out.append(arg)
            continue
        experiment, slash, run = value.partition("/")
        plain = slash and _PLAIN_NAME.match(experiment) and _PLAIN_NAME.match(run)
        if plain and typed_experiment not in (None, experiment):
            raise UsageError(
                f"--run {value} is a run of experiment {experiment}, and --experiment says {typed_experiment}: "
                f"pass --run {run} with the --experiment that holds it, or --run {value} alone"
            )
        if plain:
            out += ([] if typed_experiment else ["--experiment", experiment]) + ["--run", run]
        else:
            out += [arg] if equals else [arg, value]
    return out


def locate_checkpoint(
    root: Path,
    experiment: str,
    run: str | None,
    ckpt: str | None,
    experiment_given: bool = True,
    any_experiment: bool = False,
    model_class: str | None = None,
) -> tuple[RunDir | None, Path]:
    """``--ckpt_path`` of validate/test/predict -> (the run folder it belongs to or ``None``, the file).

    ``None`` means ``best`` when a run has one, else ``last``. ``best``/``last`` pick that file of ``--run``,
    or of the experiment's run that wrote it most recently. Without ``--experiment``, a ``--run`` found in
    exactly one other experiment is used there.

    ``any_experiment`` (no ``--experiment`` and no model named): when ``experiment`` holds no checkpoint,
    the experiment of the newest ``best``/``last`` checkpoint under ``root`` is used, and a note says so.
    ``model_class`` (``--model`` as typed): the newest is chosen among that class's runs only (two files may
    each define a ``LitModel``, whose runs share the experiment ``litmodel``).

    Raises:
        UsageError: no such run, alias or file.
    """
    if any_experiment and run is None and ckpt in (None, *CHECKPOINT_ALIASES):
        experiment = _experiment_with_checkpoints(root, experiment)
    if run is not None and not experiment_given and not (root / experiment / run).is_dir():
        homes = sorted(p.parent.name for p in root.glob(f"*/{run}") if p.is_dir()) if root.is_dir() else []
        if len(homes) == 1:
            experiment = homes[0]
        elif homes:
            raise UsageError(
                f"--run {run} exists in several experiments ({', '.join(homes)}): add --experiment"
            )
    if ckpt is None or (
        ckpt in CHECKPOINT_ALIASES and run is not None and not (root / experiment / run).is_dir()
    ):
        ckpt = _default_alias(root, experiment, run)  # no such run: names the runs there and the closest
    if ckpt not in CHECKPOINT_ALIASES:
        path = Path(ckpt)
        if not path.is_file():
            alias = difflib.get_close_matches(ckpt, CHECKPOINT_ALIASES, n=1, cutoff=0.5)
            hint = (
                f" (did you mean {alias[0]}, the run's {alias[0]}.ckpt?)"
                if alias and path.parent == Path()
                else ""
            )
            raise UsageError(f"--ckpt_path: no such checkpoint file: {path}{hint}")
        return RunDir.of_checkpoint(path), path
    runs = [run] if run else existing_runs(root, experiment)
    runs = [r for r in runs if RunDir(root, experiment, r).checkpoint(ckpt).is_file()]
    if model_class and not run and runs:
        runs = _runs_of_class(root, experiment, runs, model_class, ckpt)
    if not runs:
        where = root / experiment / run if run else root / experiment
        with_last = [r for r in ([run] if run else existing_runs(root, experiment))
                     if RunDir(root, experiment, r).checkpoint("last").is_file()]  # fmt: skip
        if ckpt == "best" and with_last:
            raise UsageError(
                f"--ckpt_path best: {where} has last.ckpt but no best.ckpt (best.ckpt is kept by the --monitor "
                "metric, which this run never logged: no validation loop?); use --ckpt_path last"
            )
        raise UsageError(
            f"--ckpt_path {ckpt}: no {ckpt}.ckpt under {where}; train with 'litforge fit', pass "
            "--experiment/--run of a run that has one, or a checkpoint path"
        )
    # the run whose checkpoint was written last, whatever its name
    latest = max(runs, key=lambda r: RunDir(root, experiment, r).checkpoint(ckpt).stat().st_mtime)
    found = RunDir(root, experiment, latest)
    if len(runs) > 1:  # the choice is litforge's: say which and how to make another
        print(
            f"litforge: note: using {found.checkpoint(ckpt)}, the newest {ckpt}.ckpt of the {len(runs)} runs "
            f"with one in {root / experiment} (--run NAME or --ckpt_path PATH picks another)",
            file=sys.stderr,
        )
    return found, found.checkpoint(ckpt)


def _runs_of_class(root: Path, experiment: str, runs: list[str], model_class: str, ckpt: str) -> list[str]:
    """The ``runs`` whose config.yaml names ``model_class`` (or cannot be read); refused when none does."""
    from litforge.engine.checkpoint_fit import same_class
    from litforge.engine.config_sources import class_path_of, read_config_file

    trained: dict[str, str | None] = {}
    for name in runs:
        try:
            trained[name] = class_path_of(
                read_config_file(RunDir(root, experiment, name).config).get("model")
            )
        except (OSError, UsageError):
            trained[name] = None
    kept = [name for name, cls in trained.items() if cls is None or same_class(cls, model_class)]
    if not kept:
        others = ", ".join(sorted({cls for cls in trained.values() if cls}))
        raise UsageError(
            f"--model {model_class}: no run of it under {root / experiment} has a {ckpt}.ckpt (the runs there "
            f"trained {others}); train it with 'litforge fit', or pass --run/--ckpt_path"
        )
    return kept


def _experiment_with_checkpoints(root: Path, experiment: str) -> str:
    """``experiment`` when one of its runs has a best/last checkpoint, else the experiment of the newest one
    under ``root`` (a note names it), else ``experiment``."""
    if not root.is_dir() or _alias_checkpoints(root, f"{experiment}/*"):
        return experiment
    newest = newest_alias_checkpoint(root)
    if newest is None:
        return experiment
    other = newest.parent.parent.parent.name
    print(
        f"litforge: note: no runs under {root / experiment}; using experiment {other}, whose run "
        f"{newest.parent.parent.name} wrote the newest checkpoint (--experiment picks one)",
        file=sys.stderr,
    )
    return other


def _alias_checkpoints(root: Path, runs: str, aliases: tuple[str, ...] = CHECKPOINT_ALIASES) -> list[Path]:
    """The best/last checkpoints of the run folders ``root/runs`` (a glob: ``classifier/*``)."""
    return [path for alias in aliases for path in root.glob(f"{runs}/checkpoints/{alias}.ckpt")]


def newest_alias_checkpoint(root: Path, aliases: tuple[str, ...] = CHECKPOINT_ALIASES) -> Path | None:
    """The ``aliases`` checkpoint (best/last) written last by any run under ``root``, or ``None``."""
    found = _alias_checkpoints(root, "*/*", aliases) if root.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def checkpoint_of_run(root: Path, ckpt: str | None, run: str | None, experiment: str | None) -> Path:
    """``export --ckpt best|last [--run NAME] [--experiment NAME]`` -> the checkpoint file: ``--run``'s (in
    whichever experiment holds it), else the newest run's, as ``test --ckpt_path`` picks it.

    Raises:
        UsageError: no such run or checkpoint.
    """
    if experiment is not None:
        check_run_name(experiment, "--experiment")
    if run is not None:
        check_run_name(run, "--run")
    if run is not None and experiment is None:
        homes = sorted(p.parent.name for p in root.glob(f"*/{run}") if p.is_dir()) if root.is_dir() else []
        if len(homes) > 1:
            raise UsageError(
                f"--run {run} exists in several experiments ({', '.join(homes)}): add --experiment"
            )
        experiment = homes[0] if homes else None
    newest = newest_alias_checkpoint(root, (ckpt,) if ckpt in CHECKPOINT_ALIASES else CHECKPOINT_ALIASES)
    home = experiment or (newest.parent.parent.parent.name if newest is not None else "model")
    if run is not None and not (root / home / run).is_dir():
        _default_alias(root, home, run)  # no such run: names the runs there and the closest
    _, path = locate_checkpoint(root, home, run, ckpt, experiment_given=True)
    return path


def _default_alias(root: Path, experiment: str, run: str | None) -> str:
    """``best`` when a run (``--run`` or any) has one, else ``last``; exit 2 when there is neither."""
    runs = [run] if run else existing_runs(root, experiment)
    for alias in CHECKPOINT_ALIASES:
        if any(RunDir(root, experiment, r).checkpoint(alias).is_file() for r in runs):
            return alias
    if run and not (root / experiment / run).is_dir():
        held = sorted(f"{p.parent.name}/{p.name}" for p in root.glob("*/*") if (p / "checkpoints").is_dir())
        listing = (
            f"runs there: {', '.join(held[:8])}{', ...' if len(held) > 8 else ''}" if held else "none yet"
        )
        names = {held_run.split("/")[1]: held_run for held_run in held}
        # one character off a short name (e2 for e1) is as close as two in a longer one
        close = difflib.get_close_matches(run, list(names), n=1, cutoff=0.5 if len(run) <= 3 else 0.6)
        hint = f"did you mean {close[0]} ({names[close[0]]})? " if close else ""
        if own := sorted(h for h in held if h.startswith(f"{run}/")):  # an experiment's name
            hint = f"{run} is an experiment: --run {own[-1]} picks one of its runs, --experiment {run} the newest; "
        elsewhere = "" if held else "; runs of another folder: --root DIR"
        raise UsageError(f"--run {run}: no such run under {root} ({hint}{listing}{elsewhere})")
    where = root / experiment / run if run else root / experiment
    raise UsageError(
        f"no --ckpt_path given and no checkpoint under {where}; train with 'litforge fit' or pass "
        "--ckpt_path best|last|FILE (and --experiment/--run for another model's runs)"
    )


def experiment_name(class_path: str | None) -> str:
    """``litforge.models.Classifier`` -> ``classifier``."""
    return (class_path or "model").rsplit(".", 1)[-1].lower()


def existing_runs(root: Path, experiment: str) -> list[str]:
    """Run names under ``root/experiment``, oldest first (version_N by N, then others by mtime)."""
    folder = root / experiment
    if not folder.is_dir():
        return []
    runs = [p for p in folder.iterdir() if p.is_dir()]
    return [p.name for p in sorted(runs, key=lambda p: (_version_number(p.name), p.stat().st_mtime))]


def next_free_run(root: Path, experiment: str) -> str:
    """The next ``version_N`` not yet taken in ``root/experiment``."""
    taken = [n for n in map(_version_number, existing_runs(root, experiment)) if n >= 0]
    return f"version_{max(taken, default=-1) + 1}"


def _version_number(name: str) -> int:
    match = _VERSION.match(name)
    return int(match.group(1)) if match else -1
