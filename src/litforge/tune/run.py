"""Run a search with the chosen backend and write its outputs: what ``litforge tune`` does after parsing.

litforge tune --space configs/digits_search.yaml   # -> runs/tune/digits_search/{best.yaml,trials.csv,plots/}
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from litforge.tune.fit_config import FitConfig
from litforge.tune.outputs import (
    TrialRecord,
    records_from_study,
    study_from_records,
    summary_table,
    write_best,
    write_plots,
    write_trials_csv,
)
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
    workers: int = 1
    heartbeat_s: int = 10
    keep_checkpoints: int = 3
    grace_epochs: int = 3
    reduction_factor: int = 3
    plots: bool = True
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.out / 'study.db'}"


def run_search(plan: SearchPlan, space: SearchSpace, fit: FitConfig) -> TrialRecord | None:
    """Run the search, write best.yaml / trials.csv / plots, print the summary; return the best trial.

    Outputs are written even when the search is interrupted (Ctrl-C), for the trials that finished.
    """
    if plan.sampler == "grid":
        grid_size = 1
        for param in space.params:
            grid_size *= len(param.grid())
        plan = _replace(plan, n_trials=min(plan.n_trials, grid_size))
    runner = TrialRunner(tuple(fit.fit_args), space.metric, space.maximize, plan.out)
    plan.out.mkdir(parents=True, exist_ok=True)
    if plan.backend == "ray":
        from litforge.tune.ray_backend import run_ray

        records = run_ray(
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
        plots = plan.plots and importlib.util.find_spec("optuna") is not None  # plots use litforge[tune]
        _write(plan, space, fit, records, study_from_records(records, space) if plots else None)
        return _report(plan, space, records)
    else:
        from litforge.tune.optuna_backend import OptunaSearch, run_optuna

        search = OptunaSearch(
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
            heartbeat_s=plan.heartbeat_s,
            keep_checkpoints=plan.keep_checkpoints,
            timeout_s=plan.timeout_s,
            workers=plan.workers,
        )
        try:
            study = run_optuna(search)
        finally:  # also on Ctrl-C: what finished is written out
            study = search.load_study(search.storage(), plan.seed)
            records = records_from_study(study)
            _write(plan, space, fit, records, study)
        return _report(plan, space, records)


def _write(
    plan: SearchPlan, space: SearchSpace, fit: FitConfig, records: list[TrialRecord], study: object
) -> None:
    write_trials_csv(records, space, plan.out / "trials.csv")
    write_best(records, space, fit, plan.out)
    if plan.plots and study is not None:
        write_plots(study, plan.out)


def _report(plan: SearchPlan, space: SearchSpace, records: list[TrialRecord]) -> TrialRecord | None:
    from litforge.tune.outputs import best_record

    best = best_record(records, space.maximize)
    print(summary_table(records, space, best), end="", flush=True)
    print(f"outputs: {plan.out} (best.yaml, trials.csv{', plots/' if plan.plots else ''})", flush=True)
    if best is not None:
        print(f"train the best config: litforge fit --config {plan.out / 'best.yaml'}", flush=True)
    return best


def _replace(plan: SearchPlan, **changes: object) -> SearchPlan:
    from dataclasses import replace

    return replace(plan, **changes)  # type: ignore[arg-type]
