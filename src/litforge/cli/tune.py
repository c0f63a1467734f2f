"""``litforge tune``: hyperparameter search with Optuna (default) or Ray Tune on a fit config.

litforge tune --config configs/digits.yaml --space configs/digits_search.yaml --n-trials 30
litforge tune --space configs/digits_search.yaml --workers 2 --trainer.max_epochs 10
litforge tune --space configs/digits_search.yaml --storage postgresql://user:pw@db/optuna --study-name s1
litforge tune --space configs/digits_search.yaml --backend ray --cpus-per-trial 1

Fit flags (``--trainer.*``, ``--model.*``, ``--data.*``, ``--optimizer.*``, ``--lr_scheduler.*``,
``--seed_everything``) apply to every trial.
Outputs go to ``--out`` (default ``runs/tune/<study-name>/``): best.yaml, trials.csv, plots/, trials/.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litforge._compat.argparse import flag_suggestion
from litforge.cli.command_parser import CommandParser, StatedDefaultsFormatter
from litforge.cli.errors import JobFailed, UsageError
from litforge.tune.optuna_factories import (
    DEFAULT_PRUNER,
    DEFAULT_REDUCTION_FACTOR,
    DEFAULT_RUNGS,
    default_grace_epochs,
)
from litforge.tune.rungs import parse_rungs
from litforge.tune.space import PRUNERS, SAMPLERS, SearchSpace

if TYPE_CHECKING:
    from litforge.tune.fit_config import SearchConfig

# + their .ARGs; --monitor/--monitor_mode reach best.yaml (each trial keeps best.ckpt by the search's metric)
FIT_FLAGS = (
    "--model",
    "--data",
    "--optimizer",
    "--lr_scheduler",
    "--seed_everything",
    "--monitor",
    "--monitor_mode",
)
FIT_PREFIXES = ("--trainer.", "--model.", "--data.", "--optimizer.", "--lr_scheduler.")
DEFAULTS = {"n_trials": 20, "sampler": "tpe", "pruner": DEFAULT_PRUNER, "seed": 0}


def build_parser() -> CommandParser:
    """The ``litforge tune`` options (fit flags are passed through, see the module docstring)."""
    p = CommandParser(
        prog="litforge tune",
        description="Search hyperparameters of a fit config. Any fit flag (--trainer.max_epochs 5, "
        "--model.arch cnn, ...) applies to every trial.",
        formatter_class=StatedDefaultsFormatter,
    )
    p.add_argument(
        "-c",
        "--config",
        action="append",
        default=[],
        help="fit config; repeat it to stack files as fit does, later ones win (default: the packaged "
        "digits classifier)",
    )
    p.add_argument("--space", required=True, help="search-space YAML (see docs/tune.md)")
    p.add_argument("--backend", choices=("optuna", "ray"), default="optuna")
    p.add_argument(
        "--n-trials", type=int, help="trials in total, across re-runs and workers (space file, else 20)"
    )
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--study-name", help="default: the space file's name")
    p.add_argument("--out", type=Path, help="default: runs/tune/<study-name>/")
    p.add_argument("--seed", type=int, help="sampler seed (space file, else 0)")
    p.add_argument("--sampler", choices=SAMPLERS, help="Optuna sampler (space file, else tpe)")
    p.add_argument("--pruner", choices=PRUNERS, help=f"Optuna pruner (space file, else {DEFAULT_PRUNER})")
    p.add_argument(
        "--grace-period",
        type=int,
        help="pruner warm-up in epochs: the first epoch the median pruner may stop a trial after, the "
        "halving pruners' and ASHA's first rung (default: 3 for median, 1 otherwise; measured, see docs/tune.md)",
    )
    p.add_argument(
        "--reduction-factor",
        type=int,
        help=f"hyperband / successive-halving / ASHA reduction factor (default {DEFAULT_REDUCTION_FACTOR})",
    )
    p.add_argument(
        "--rungs",
        help=f"--pruner rungs: EPOCHS:K,... after EPOCHS epochs keep the best 1/K of the trials there, no "
        f"pruning after the last rung (space file, else {DEFAULT_RUNGS})",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=0,
        help="stop a trial after this many validation epochs without a better metric (0: never; off by "
        "default: on digits it cost accuracy for few epochs saved, see docs/tune.md)",
    )
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<out>/study.db)")
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes on this machine sharing the storage; default 1 (Ray: trials at once, "
        "default: as many as the resources allow)",
    )
    p.add_argument(
        "--heartbeat", type=int, default=10, help="seconds between trial heartbeats; stale after 3 missed"
    )
    p.add_argument(
        "--keep-checkpoints", type=int, default=3, help="keep checkpoints of the k best trials (-1: all)"
    )
    p.add_argument("--no-plots", action="store_true", help="skip the HTML/PNG plots")
    ray = p.add_argument_group("Ray Tune (--backend ray)")
    ray.add_argument("--address", help="join a running Ray cluster (ray start --head); default: local Ray")
    ray.add_argument("--cpus-per-trial", type=float, default=1.0)
    ray.add_argument("--gpus-per-trial", type=float, default=0.0)
    return p


def split_fit_flags(unknown: list[str], parser: CommandParser | None = None) -> list[str]:
    """Keep the fit flags among arguments argparse does not know; anything else is a usage error (with a
    "did you mean" for a misspelt flag of ``parser``)."""
    fit: list[str] = []
    expecting_value = False
    for token in unknown:
        if token.startswith("--"):
            name = token.split("=", 1)[0]
            if name not in FIT_FLAGS and not name.startswith(FIT_PREFIXES):
                hint = flag_suggestion(parser, f"unrecognized arguments: {name}") if parser else ""
                hint = hint or " (see 'litforge tune --help')"
                raise UsageError(f"tune: unrecognized argument {token}{hint}")
            expecting_value = "=" not in token
        elif not expecting_value:
            raise UsageError(f"tune: unexpected argument {token!r} (see 'litforge tune --help')")
        else:
            expecting_value = False
        fit.append(token)
    return fit


def main(command: str, argv: list[str]) -> int:
    """Parse, validate the space against the config, run the search, write the outputs."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    fit_flags = split_fit_flags(unknown, parser)
    for name in ("n_trials", "workers", "grace_period", "reduction_factor", "heartbeat"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.patience < 0:
        raise UsageError(f"--patience must be 0 (off) or more, got {args.patience}")
    for name in ("cpus_per_trial", "gpus_per_trial"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(args, name):g}")
    if args.backend == "ray":
        from litforge.tune.ray_backend import check_local_gpus

        check_local_gpus(args.gpus_per_trial, args.address)
    for config in args.config:
        if not Path(config).is_file():
            raise UsageError(f"--config: no such file: {config}")
    if args.backend == "optuna" and (args.workers or 1) > 1:
        from litforge.tune.worker_processes import start_importing_in_background

        start_importing_in_background()

    from litforge.tune.fit_config import SearchConfig
    from litforge.tune.run import SearchPlan, run_search
    from litforge.tune.space import load_space

    space = load_space(args.space)
    study_name = args.study_name or Path(args.space).stem
    pruner = _first(args.pruner, space.pruner, DEFAULTS["pruner"])
    rungs = parse_rungs(args.rungs) if args.rungs is not None else space.rungs
    if args.rungs is not None and (pruner != "rungs" or args.backend == "ray"):
        raise UsageError(
            "--rungs goes with --pruner rungs on the Optuna backend "
            "(Ray's ASHA takes --grace-period and --reduction-factor)"
        )
    halving_flags = args.grace_period is not None or args.reduction_factor is not None
    if pruner == "rungs" and args.backend == "optuna" and halving_flags:
        raise UsageError(
            "--grace-period and --reduction-factor set the halving pruners' rungs; the rungs pruner (the "
            "default) takes --rungs, e.g. --rungs 1:3,3:3 (or pass --pruner successive-halving)"
        )
    plan = SearchPlan(
        backend=args.backend,
        study_name=study_name,
        out=(args.out or Path("runs") / "tune" / study_name).resolve(),
        n_trials=_first(args.n_trials, space.n_trials, DEFAULTS["n_trials"]),
        sampler=_first(args.sampler, space.sampler, DEFAULTS["sampler"]),
        pruner=pruner,
        seed=_first(args.seed, space.seed, DEFAULTS["seed"]),
        timeout_s=args.timeout,
        storage=args.storage,
        workers=args.workers or (None if args.backend == "ray" else 1),
        heartbeat_s=args.heartbeat,
        keep_checkpoints=args.keep_checkpoints,
        grace_epochs=args.grace_period or default_grace_epochs(pruner),
        reduction_factor=args.reduction_factor or DEFAULT_REDUCTION_FACTOR,
        rungs=rungs or (),  # none given: make_pruner uses DEFAULT_RUNGS
        plots=not args.no_plots,
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
    )
    config_args = [arg for config in args.config for arg in ("--config", str(Path(config).resolve()))]
    fit = SearchConfig([*config_args, *fit_flags], space, seed=plan.seed)
    if one_process := one_process_flags(fit):
        fit_flags = [*fit_flags, *one_process]
        fit = SearchConfig([*config_args, *fit_flags], space, seed=plan.seed)
    space = with_direction(space, fit)
    if stop_flags := plateau_stop_flags(space, args.patience):
        fit = SearchConfig([*config_args, *fit_flags, *stop_flags], space, seed=plan.seed)
    best = run_search(plan, space, fit)
    if best is None:
        raise JobFailed(f"no trial completed; see {plan.out / 'trials.csv'} for the reasons")
    return 0


def with_direction(space: SearchSpace, fit: SearchConfig) -> SearchSpace:
    """A space file without ``direction:`` optimizes its metric the way the fit config's
    ``ModelCheckpoint``/``EarlyStopping`` on that metric does (``mode: max`` -> maximize), else maximizes a
    score's name (``val_iou``, ``val_acc``; a note says so), else minimizes: ``metric: val_iou`` used to
    keep the trial of the lowest IoU."""
    from litforge.callbacks.monitor_mode import (
        configured_mode,
        configured_monitors,
        mode_by_name,
        unstated_min_on_scores,
        unstated_mode_notes,
    )
    from litforge.engine.config_sources import scan, stated_callback_modes

    if space.direction_given:
        return space
    callbacks = fit.resolve({}).trainer.get("callbacks") or []
    monitors = configured_monitors(callbacks if isinstance(callbacks, list) else [callbacks])
    stated = stated_callback_modes(scan(fit.fit_args))
    for note in unstated_mode_notes(monitors, stated):
        print(f"litforge: note: {note}", file=sys.stderr)
    mode = configured_mode(monitors, space.metric)
    if space.metric in unstated_min_on_scores(monitors, stated):
        mode = None  # Lightning's default, not the user's word: the name decides
    if mode is None and mode_by_name(space.metric) == "max":
        mode = "max"
        print(
            f"litforge: note: {space.source or 'the space file'} has no direction: maximizing {space.metric}, "
            "a score by its name (direction: minimize to minimize it)",
            file=sys.stderr,
        )
    return replace(space, direction="maximize" if mode == "max" else "minimize")


def one_process_flags(fit: SearchConfig) -> list[str]:
    """Trials train as one process each: a DDP config (``devices: 2``, a DDP run's config.yaml) launched
    a second process that re-ran ``litforge tune``, took another trial and hung both. Flags that say so,
    with a note; none for a config of one device."""
    trainer = fit.resolve({}).trainer
    devices, nodes = trainer.devices, getattr(trainer, "num_nodes", 1)
    one = devices in (None, 1, "1", "auto") or (isinstance(devices, (list, tuple)) and len(devices) == 1)
    if one and nodes in (None, 1):
        return []
    print(
        f"litforge: note: each trial trains as one process (the config asks devices {devices}"
        f"{f', num_nodes {nodes}' if nodes not in (None, 1) else ''}); --workers K runs K trials at once",
        file=sys.stderr,
    )
    return ["--trainer.devices", "1", "--trainer.num_nodes", "1", "--trainer.strategy", "auto"]


def plateau_stop_flags(space: SearchSpace, patience: int) -> list[str]:
    """Fit flags that append ``PlateauStop`` on the search metric to the config's callbacks (none for 0);
    being part of the fit config, it is in every trial's config.yaml and in best.yaml."""
    if patience == 0:
        return []
    return [
        "--trainer.callbacks+=litforge.callbacks.PlateauStop",
        f"--trainer.callbacks.monitor={space.metric}",
        f"--trainer.callbacks.mode={'max' if space.maximize else 'min'}",
        f"--trainer.callbacks.patience={patience}",
        "--trainer.callbacks.strict=false",  # a metric the model does not log: the trial names it
    ]


def _first(*values: object) -> Any:
    return next(v for v in values if v is not None)
