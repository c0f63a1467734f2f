"""The Ray Tune backend: ``litforge tune --backend ray`` (ASHA early stopping, local Ray or a cluster).

litforge tune --space configs/digits_search.yaml --backend ray --cpus-per-trial 1
ray start --head && litforge tune --space configs/digits_search.yaml --backend ray --address auto

Each trial trains through the same ``LitforgeCLI`` path as ``litforge fit`` (``litforge.tune.trial``),
reporting the space's metric to Tune after every epoch (``TuneReportCheckpointCallback``, via ``EachEpoch``).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import warnings
from functools import partial
from typing import Any

from litforge.errors import UsageError
from litforge.tune.outputs import TrialRecord
from litforge.tune.space import Param, SearchSpace
from litforge.tune.trial import EachEpoch, TrialFailed, TrialRunner

_COMPLETE = "litforge_complete"


def _ray() -> Any:
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise UsageError("--backend ray needs Ray Tune: pip install 'litforge[ray]'") from None
    return ray


def ray_domain(param: Param, grid: bool = False) -> Any:
    """A space entry as a Ray Tune domain (``tune.loguniform``, ``tune.qrandint``, ``tune.choice``...)."""
    from ray import tune

    if grid:
        return tune.grid_search(param.grid())
    if param.type == "categorical":
        return tune.choice(list(param.choices))
    if param.type == "int":
        if param.log:
            return tune.lograndint(param.low, param.high + 1)
        return tune.qrandint(param.low, param.high, param.step or 1)
    if param.step is not None:
        return tune.quniform(param.low, param.high, param.step)
    return tune.loguniform(param.low, param.high) if param.log else tune.uniform(param.low, param.high)


def _search_alg(sampler: str, space: SearchSpace, seed: int) -> Any:
    if sampler == "tpe":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(metric=space.metric, mode=_mode(space), seed=seed)
    if sampler in ("random", "grid"):
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed)
    raise UsageError(f"--sampler {sampler} is Optuna-only; with --backend ray use tpe, random or grid")


def _mode(space: SearchSpace) -> str:
    return "max" if space.maximize else "min"


def _trainable(config: dict[str, Any], runner: TrialRunner, numbers: Any) -> None:
    import ray
    from ray import tune
    from ray.tune.integration.pytorch_lightning import TuneReportCheckpointCallback

    number = ray.get(numbers.number.remote(tune.get_context().get_trial_id()))
    report = EachEpoch(TuneReportCheckpointCallback(metrics=[runner.metric], save_checkpoints=False))
    try:
        result = runner.train(str(number), config, [report])
    except UsageError:
        raise
    except Exception as error:  # the reason, with the user's own line, reaches trials.csv via result.error
        raise TrialFailed.from_error(error) from error
    # A last report marks a trial that ran to its end (ASHA-stopped trials never get here).
    tune.report({runner.metric: result.value, _COMPLETE: 1.0})


class TrialNumbers:
    """Numbers a search's trials 0, 1, 2... in the order they start (one Ray actor, shared by the trials).

    A trial's number names its folder (``<out>/trials/N/``) and its row in ``trials.csv``, as with Optuna.
    It cannot be read off Ray's trial id: that is ``a1b2c_00003`` from Ray's random and grid search, but
    8 hex digits (``63173a8e``) from a searcher such as Optuna's TPE.
    """

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def number(self, trial_id: str) -> int:
        """The trial's number (the same one again for a trial that Ray restarts)."""
        return self._numbers.setdefault(trial_id, len(self._numbers))

    def numbers(self) -> dict[str, int]:
        return dict(self._numbers)


_FLAGS = {"CPU": "--cpus-per-trial", "GPU": "--gpus-per-trial"}


def check_resources(per_trial: dict[str, float], available: dict[str, float], address: str | None) -> None:
    """Refuse trials that need more CPUs or GPUs than there are: Tune would wait for them forever, silently.

    Without ``address`` the trials run on this machine, so that is a usage error. A cluster (``--address``)
    may still grow (an autoscaler adds nodes when trials wait), so there it is a warning.
    """
    for resource, wanted in per_trial.items():
        have = available.get(resource, 0.0)
        if wanted <= have:
            continue
        count = f"{have:g} {resource}{'s' if have != 1 else ''}" if have else f"no {resource}"
        if address is None:
            raise UsageError(
                f"{_FLAGS[resource]} {wanted:g}: this machine has {count} for trials, so none could start "
                "(ask for less, or join a Ray cluster that has them with --address)"
            )
        print(
            f"litforge: warning: {_FLAGS[resource]} {wanted:g}: the Ray cluster at {address} has {count} "
            "now; trials wait until nodes with enough join",
            file=sys.stderr,
            flush=True,
        )


def check_local_gpus(gpus_per_trial: float, address: str | None) -> None:
    """Before starting Ray: trials on this machine (no ``address``) cannot have more GPUs than torch sees."""
    if address is None and gpus_per_trial > 0:
        import torch

        check_resources({"GPU": gpus_per_trial}, {"GPU": torch.cuda.device_count()}, address)


def run_ray(
    runner: TrialRunner,
    space: SearchSpace,
    *,
    study_name: str,
    n_trials: int,
    sampler: str,
    seed: int,
    max_epochs: int,
    grace_epochs: int,
    reduction_factor: int,
    workers: int | None,
    cpus_per_trial: float,
    gpus_per_trial: float,
    address: str | None,
    timeout_s: float | None,
) -> list[TrialRecord]:
    """Run the search on Ray Tune with ASHA and return the trials as records."""
    ray = _ray()
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    grid = sampler == "grid"
    param_space = {p.key: ray_domain(p, grid) for p in space.params}
    scheduler = ASHAScheduler(
        time_attr="training_iteration",
        max_t=max(max_epochs, grace_epochs),
        grace_period=grace_epochs,
        reduction_factor=reduction_factor,
    )
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
            # Trials run in Ray workers that must import litforge (and the user's modules) like this process.
            runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}}
            if os.environ.get("PYTHONPATH")
            else None,
        )
    try:
        check_resources({"CPU": cpus_per_trial, "GPU": gpus_per_trial}, ray.cluster_resources(), address)
        numbers = ray.remote(num_cpus=0)(TrialNumbers).remote()  # no CPU: it must not hold up a trial
        trainable = tune.with_resources(
            partial(_trainable, runner=runner, numbers=numbers),
            {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
        )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=space.metric,
                mode=_mode(space),
                num_samples=1 if grid else n_trials,
                scheduler=scheduler,
                search_alg=None if grid else _search_alg(sampler, space, seed),
                time_budget_s=timeout_s,
                max_concurrent_trials=workers,
            ),
            run_config=tune.RunConfig(
                name=study_name, storage_path=str(runner.out / "ray"), verbose=0, log_to_file=True
            ),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = tuner.fit()
        return _records(list(results), ray.get(numbers.numbers.remote()), space, max_epochs)
    finally:
        if started:
            ray.shutdown()


def _records(
    results: list[Any], numbers: dict[str, int], space: SearchSpace, max_epochs: int
) -> list[TrialRecord]:
    """Ray's results -> records, numbered as their trials were (trials that never started: after those)."""
    unnumbered = itertools.count(max(numbers.values(), default=-1) + 1)
    records = []
    for result in results:
        number = numbers.get((result.metrics or {}).get("trial_id"))
        records.append(_record(result, next(unnumbered) if number is None else number, space, max_epochs))
    return sorted(records, key=lambda record: record.number)


def _record(result: Any, number: int, space: SearchSpace, max_epochs: int) -> TrialRecord:
    """A Ray result -> a record; a trial ASHA stopped before its last epoch is PRUNED."""
    metrics = result.metrics or {}
    frame = result.metrics_dataframe
    curve: dict[int, float] = {}
    if frame is not None and space.metric in frame:
        epochs = frame[frame[_COMPLETE] != 1.0] if _COMPLETE in frame else frame
        curve = {i: float(v) for i, v in enumerate(epochs[space.metric].tolist())}
    params = {p.key: result.config.get(p.key) for p in space.params}
    duration = metrics.get("time_total_s")
    if result.error is not None:
        cause = getattr(result.error, "cause", None)  # Ray's RayTaskError wraps what the trial raised
        reason = str(cause) if isinstance(cause, TrialFailed) else " ".join(str(result.error).split())[-500:]
        return TrialRecord(number, "FAIL", None, params, duration, curve, fail_reason=reason)
    if metrics.get(_COMPLETE) == 1.0 or len(curve) >= max_epochs:  # Tune stops a trial at max_t itself
        best = (max if space.maximize else min)(curve.values())
        return TrialRecord(number, "COMPLETE", best, params, duration, curve)
    return TrialRecord(number, "PRUNED", None, params, duration, curve)
