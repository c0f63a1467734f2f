"""Run a search with the chosen backend and write its outputs: what ``litforge tune`` does after parsing.

litforge tune --space configs/digits_search.yaml   # -> runs/tune/digits_search/{best.yaml,trials.csv,plots/}
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from litforge.errors import UsageError
from litforge.tune.fit_config import SearchConfig
from litforge.tune.optuna_factories import close_storages, fold_write_ahead_log, requeue_interrupted
from litforge.tune.outputs import (
    TrialRecord,
    records_from_study,
    study_from_records,
    summary_table,
    write_best,
    write_plots,
    write_trials_csv,
)
from litforge.tune.rungs import Rung
from litforge.tune.space import SearchSpace
from litforge.tune.trial import TrialRunner


@dataclass(frozen=True)
class SearchPlan:
    """The resolved ``litforge tune`` settings (flags, else the space file, else defaults)."""

    backend: str
    study_name: str
    out: Path
    n_trials: int
    sampler: str
    pruner: str
    seed: int
    timeout_s: float | None = None
    storage: str | None = None
    workers: int | None = 1  # None: Ray decides from the resources
    heartbeat_s: int = 10
    keep_checkpoints: int = 3
    grace_epochs: int = 3
    reduction_factor: int = 3
    rungs: tuple[Rung, ...] = ()  # --pruner rungs
    plots: bool = True
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.out / 'study.db'}"


def run_search(plan: SearchPlan, space: SearchSpace, fit: SearchConfig) -> TrialRecord | None:
    """Run the search, write best.yaml / trials.csv / plots, print the summary; return the best trial.

    On Ctrl-C the outputs are still written, for the trials that finished, before the interrupt goes on.
    """
    if plan.sampler == "grid":  # a grid search tries each point once
        plan = replace(plan, n_trials=min(plan.n_trials, math.prod(len(p.grid()) for p in space.params)))
    runner = TrialRunner(tuple(fit.fit_args), space.metric, space.maximize, plan.out)
    new_folder = not plan.out.exists()
    plan.out.mkdir(parents=True, exist_ok=True)
    try:
        return _search_and_report(plan, space, fit, runner)
    except UsageError:
        # a search refused before any trial finished (a metric the model does not log) leaves nothing
        # behind; one refused later (a trial's value the fit config rejects) keeps what finished
        finished = any((plan.out / "trials").glob("*/finished.json"))
        if new_folder and not finished:
            shutil.rmtree(plan.out, ignore_errors=True)
        raise


def _search_and_report(
    plan: SearchPlan, space: SearchSpace, fit: SearchConfig, runner: TrialRunner
) -> TrialRecord | None:
    interrupted: KeyboardInterrupt | None = None
    if plan.backend == "ray":
        records = _run_ray(plan, space, fit, runner)
        plotting = plan.plots and importlib.util.find_spec("optuna") is not None  # plots use litforge[tune]
        study = study_from_records(records, space) if plotting else None
    else:
        from litforge.tune.optuna_backend import run_optuna

        _note_rungs_past_the_end(plan, fit)
        search = _optuna_search(plan, space, runner)
        try:
            study = run_optuna(search)
        except KeyboardInterrupt as stop:
            interrupted = stop
            print("litforge: interrupted; writing the outputs of the finished trials", file=sys.stderr)
            study = search.load_study(search.storage(), plan.seed)
            requeue_interrupted(study)
        records = records_from_study(study, space)
    write_trials_csv(records, space, plan.out / "trials.csv")
    best = write_best(records, space, fit, plan.out)
    if plan.plots and study is not None:
        write_plots(study, plan.out)
    if plan.backend == "optuna":
        close_storages()
        fold_write_ahead_log(plan.storage_url)  # study.db alone holds the study
    print(summary_table(records, space, best), end="", flush=True)
    written = [name for name in ("best.yaml", "trials.csv", "plots/") if (plan.out / name).exists()]
    print(f"outputs: {plan.out} ({', '.join(written)})", flush=True)
    if best is not None:
        so_far = " (the best so far: run the command again to go on)" if interrupted is not None else ""
        print(f"train the best config: litforge fit --config {plan.out / 'best.yaml'}{so_far}", flush=True)
    if interrupted is not None:
        raise interrupted
    return best


def _note_rungs_past_the_end(plan: SearchPlan, fit: SearchConfig) -> None:
    """The rungs pruner's rungs at or past the trials' last epoch never prune: say so (the default rungs
    1:4,6:3 under --trainer.max_epochs 4); and that pruning counts epochs when the trials run by steps."""
    from litforge.tune.optuna_factories import DEFAULT_RUNGS
    from litforge.tune.rungs import parse_rungs

    trainer = fit.resolve({}).trainer
    max_epochs, max_steps = trainer.max_epochs, getattr(trainer, "max_steps", None)
    if plan.pruner == "none":
        return
    if isinstance(max_steps, int) and max_steps > 0 and not (isinstance(max_epochs, int) and max_epochs > 0):
        print(
            f"litforge: note: the trials train by steps (max_steps {max_steps}, no max_epochs), and pruning "
            "counts epochs (each epoch's last validation is reported): a trial shorter than its rungs' epochs "
            "is never pruned, and trials of other batch sizes reach a rung at other steps; set "
            "--trainer.max_epochs to prune by epochs, or --pruner none",
            file=sys.stderr,
        )
        return
    if plan.pruner != "rungs" or not isinstance(max_epochs, int) or max_epochs < 1:
        return
    rungs = plan.rungs or parse_rungs(DEFAULT_RUNGS)
    idle = [str(rung) for rung in rungs if rung.epochs >= max_epochs]
    if idle:
        middle = max_epochs // 2
        within = "--pruner none" if max_epochs == 1 else f"--rungs 1:4{f',{middle}:3' if middle > 1 else ''}"
        print(
            f"litforge: note: {'rung' if len(idle) == 1 else 'rungs'} {', '.join(idle)} "
            f"{'falls' if len(idle) == 1 else 'fall'} at or after the trials' last epoch ({max_epochs}) and "
            f"never {'prunes' if len(idle) == 1 else 'prune'}; set rungs within it, e.g. {within}",
            file=sys.stderr,
        )


def _optuna_search(plan: SearchPlan, space: SearchSpace, runner: TrialRunner) -> Any:
    from litforge.tune.optuna_backend import OptunaSearch

    return OptunaSearch(
        runner=runner,
        space=space,
        storage_url=plan.storage_url,
        study_name=plan.study_name,
        n_trials=plan.n_trials,
        sampler=plan.sampler,
        pruner=plan.pruner,
        seed=plan.seed,
        grace_epochs=plan.grace_epochs,
        reduction_factor=plan.reduction_factor,
        rungs=plan.rungs,
        heartbeat_s=plan.heartbeat_s,
        keep_checkpoints=plan.keep_checkpoints,
        timeout_s=plan.timeout_s,
        workers=plan.workers or 1,
    )


def _run_ray(
    plan: SearchPlan, space: SearchSpace, fit: SearchConfig, runner: TrialRunner
) -> list[TrialRecord]:
    from litforge.tune.ray_backend import run_ray

    return run_ray(
        runner,
        space,
        study_name=plan.study_name,
        n_trials=plan.n_trials,
        sampler=plan.sampler,
        seed=plan.seed,
        max_epochs=fit.resolve({}).trainer.max_epochs or 1000,
        grace_epochs=plan.grace_epochs,
        reduction_factor=plan.reduction_factor,
        workers=plan.workers,
        cpus_per_trial=plan.cpus_per_trial,
        gpus_per_trial=plan.gpus_per_trial,
        address=plan.address,
        timeout_s=plan.timeout_s,
    )
