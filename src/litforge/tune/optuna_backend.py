"""The Optuna backend of ``litforge tune``: a persistent, resumable study run by one or more workers.

litforge tune --space configs/digits_search.yaml --n-trials 30 --workers 2

Re-running the same command continues the same study (same ``--study-name`` and storage) until
``n_trials`` trials have finished in total. Every worker loads the study from the storage, so workers
on other machines with the same ``--storage`` and ``--study-name`` join the same search.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from litforge.engine.config_sources import flat_config
from litforge.errors import LitforgeError, UsageError
from litforge.processes import closed_pipe
from litforge.processes.heap import freeze_loaded_heap
from litforge.processes.lifetime import exit_when_gone
from litforge.tune.dead_trials import STALE_AFTER_HEARTBEATS, DeadTrialSweeper, has_heartbeat
from litforge.tune.fit_config import parsed_fit
from litforge.tune.optuna_factories import import_optuna, make_pruner, make_sampler, make_storage, progress
from litforge.tune.outputs import epochs_of
from litforge.tune.rungs import Rung
from litforge.tune.space import Param, SearchSpace
from litforge.tune.trial import EachEpoch, TrialFailed, TrialRunner
from litforge.tune.worker_processes import watch_worker_starts, worker_context

if TYPE_CHECKING:
    import lightning as L

_READY_TIMEOUT_S = 300
# How often a worker with nothing left to start looks whether the other workers' last trials finished
# (or failed and need a replacement). Each look is three small storage queries; a longer pause showed up
# as idle time at the end of every multi-worker search (it was 5 s: up to 5 s of a 25 s search).
_WAIT_POLL_S = 0.2


@dataclass(frozen=True)
class OptunaSearch:
    """Everything a worker needs to join the study (picklable, so workers can be processes)."""

    runner: TrialRunner
    space: SearchSpace
    storage_url: str
    study_name: str
    n_trials: int
    sampler: str
    pruner: str
    seed: int
    grace_epochs: int
    reduction_factor: int
    rungs: tuple[Rung, ...] = ()
    heartbeat_s: int = 10
    keep_checkpoints: int = 3
    timeout_s: float | None = None
    workers: int = 1

    def storage(self) -> Any:
        return make_storage(self.storage_url, self.heartbeat_s)

    def load_study(self, storage: Any, seed: int) -> Any:
        optuna = import_optuna()
        return optuna.create_study(
            storage=storage,
            study_name=self.study_name,
            direction=self.space.direction,
            sampler=make_sampler(self.sampler, self.space, seed),
            pruner=make_pruner(self.pruner, self.grace_epochs, self.reduction_factor, self.rungs),
            load_if_exists=True,
        )


def run_optuna(search: OptunaSearch) -> Any:
    """Create (or load) the study, run ``search.workers`` workers on it and return the study."""
    storage = search.storage()
    study = search.load_study(storage, search.seed)
    if study.direction.name.lower() != search.space.direction:
        says = (
            f"the space file says {search.space.direction}"
            if search.space.direction_given
            else f"the space file names no direction and litforge would {search.space.direction} "
            f"{search.space.metric} (add direction: {study.direction.name.lower()} to go on with this study)"
        )
        raise UsageError(
            f"study '{search.study_name}' in {search.storage_url} was created to "
            f"{study.direction.name.lower()}, {says}; or use another --study-name"
        )
    recorded = study.user_attrs.get("metric")
    if recorded is None:
        study.set_user_attr("metric", search.space.metric)  # its trials' values are of this metric
    elif recorded != search.space.metric:
        raise UsageError(
            f"study '{search.study_name}' in {search.storage_url} optimizes {recorded}, the space file says "
            f"{search.space.metric}; use another --study-name"
        )
    _check_same_fit_config(study, search)
    context = worker_context()
    ready = context.Barrier(search.workers)  # all workers start their first trial together
    children = [
        context.Process(
            target=_child_worker, args=(search, i, ready, os.getpid(), multiprocessing.get_start_method())
        )
        for i in range(1, search.workers)
    ]
    for child in children:
        child.start()
    end_watch = watch_worker_starts(ready, children, _WAIT_POLL_S)
    try:
        run_worker(search, 0, ready, storage)
    finally:
        end_watch()
        for child in children:
            child.join()
    return search.load_study(storage, search.seed)


def _check_same_fit_config(study: Any, search: OptunaSearch) -> None:
    """A study's trials compare only when they ran the same fit config (its values, whatever files and flags
    gave them), and ``best.yaml`` reproduces the best trial only with it: a rerun with another one (say
    ``--trainer.max_epochs 1`` after 2) is refused, naming what changed."""
    fit = parsed_fit(search.runner.fit_args)
    config = flat_config(yaml.safe_load(fit.dump(fit.config)))
    recorded = study.user_attrs.get("fit_config")
    if recorded is None:
        study.set_user_attr("fit_config", config)
        return
    # what each trial sets itself (the searched values) or how the base run was resumed says nothing of it
    own = {fit.key(param.key) for param in search.space.params} | {"resume", "overwrite"}
    changed = [
        f"{key}: {json.dumps(recorded.get(key))} -> {json.dumps(config.get(key))}"
        for key in sorted((set(recorded) | set(config)) - own)
        if recorded.get(key) != config.get(key)
    ]
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise UsageError(
            f"study '{search.study_name}' in {search.storage_url} ran another fit config "
            f"({', '.join(changed[:3])}{more}): its trials would not compare with the new ones and its "
            "best.yaml would not reproduce them; use another --study-name (or --out)"
        )


def _child_worker(search: OptunaSearch, index: int, ready: Any, main_pid: int, start_method: str) -> None:
    exit_when_gone(main_pid)  # kill -9 of `litforge tune` ends its workers too; their trials are retried
    # A forkserver's child has forkserver as its default: a DataLoader with num_workers would start its
    # workers through a new, bare forkserver (seconds of imports each epoch, and a lambda collate_fn
    # cannot be sent). They start as they do in `litforge fit` and in worker 0 instead.
    multiprocessing.set_start_method(start_method, force=True)
    closed_pipe.install()  # `litforge tune --workers 2 | head`: a started process of its own, not a fork
    try:
        run_worker(search, index, ready)
    except KeyboardInterrupt:
        sys.exit(130)
    except LitforgeError as error:
        print(f"litforge: error: worker {index}: {error}", file=sys.stderr)
        sys.exit(error.exit_code)


def run_worker(search: OptunaSearch, index: int, ready: Any = None, storage: Any = None) -> None:
    """Run trials until the study has ``n_trials`` finished ones (waiting out trials of other workers,
    which may still fail and need a replacement, and stale trials of dead workers, which are retried).

    ``storage``: one already opened in this process (opening an SQL storage takes ~0.3 s).
    """
    import_optuna()
    if search.workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // search.workers))
    storage = search.storage() if storage is None else storage
    # A distinct seed per worker and per resume, so no two samplers replay the same sequence.
    existing = len(search.load_study(storage, search.seed).get_trials(deepcopy=False))
    study = search.load_study(storage, search.seed + 1000 * existing + index)
    objective = _Objective(search.runner, search.space)
    callbacks = [
        _StopAtBudget(search.n_trials),
        _CheckpointRetention(search.runner, search.keep_checkpoints),
        _PrintTrial(search.space.metric, index if search.workers > 1 else None),
    ]
    # Without a heartbeat (a journal file) a dead worker's trial cannot be told from a running one.
    grace_s = STALE_AFTER_HEARTBEATS * search.heartbeat_s
    sweeper = DeadTrialSweeper(storage, grace_s) if has_heartbeat(storage) else None
    # Else the full collection after every trial (gc_after_trial) takes ~0.2 s.
    freeze_loaded_heap(collect=False)
    if ready is not None:  # a worker that fails to start breaks the barrier: the others go on without it
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(timeout=_READY_TIMEOUT_S)
    deadline = None if search.timeout_s is None else time.monotonic() + search.timeout_s
    said_waiting = False
    looks = 0
    while True:
        if sweeper is not None:
            sweeper.sweep(study)
        now = progress(study)
        looks += 1
        left = None if deadline is None else deadline - time.monotonic()
        if now.finished >= search.n_trials and looks == 1 and index == 0:  # the same command run again
            print(
                f"litforge: note: study '{search.study_name}' already has {now.finished} finished trials "
                f"(--n-trials {search.n_trials}), so no trial runs; raise --n-trials to search on",
                file=sys.stderr,
                flush=True,
            )
        if now.finished >= search.n_trials or (left is not None and left <= 0):
            return
        remaining = search.n_trials - now.finished - now.running
        if remaining <= 0:
            if sweeper is None:  # a dead worker's trial would be waited for forever
                return
            if (
                index == 0 and not said_waiting
            ):  # a resume after kill -9 waits here for grace_s, silent before
                said_waiting = True
                print(
                    f"litforge: waiting for {now.running} running trial(s); one whose worker is gone (kill -9) "
                    f"fails after {grace_s:g} s without a heartbeat and runs again",
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(_WAIT_POLL_S)
            continue
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=left,
            callbacks=callbacks,
            catch=(TrialFailed,),
            gc_after_trial=True,
        )


class _Objective:
    def __init__(self, runner: TrialRunner, space: SearchSpace) -> None:
        self.runner = runner
        self.space = space

    def __call__(self, trial: Any) -> float:
        optuna = import_optuna()
        from optuna_integration import PyTorchLightningPruningCallback

        values = {param.key: suggest(trial, param) for param in self.space.params}
        pruning = _Pruning(EpochsDone(trial), PyTorchLightningPruningCallback, self.space.metric)
        try:
            result = self.runner.train(str(trial.number), values, [pruning])
        except UsageError as error:  # a config mistake every trial would repeat: the search stops
            trial.set_user_attr("fail_reason", f"UsageError: {error}"[:500])
            raise
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise  # pruned, or Ctrl-C
        # Anything else -- an exception, or a job failure such as the non-finite-loss stop -- fails this trial only.
        except Exception as error:
            failed = TrialFailed.from_error(error)
            trial.set_user_attr("fail_reason", str(failed))
            raise failed from error
        trial.set_user_attr("epochs", result.epochs)
        return result.value


class EpochsDone:
    """An Optuna trial whose ``report`` steps count validation epochs done (1, 2, ...), and which is never
    pruned at its last epoch.

    ``PyTorchLightningPruningCallback`` reports Lightning's 0-based ``current_epoch``, so a halving
    pruner's first rung of 1 (``min_resource``, which must be >= 1) would first act after two epochs, and
    a trial could never be pruned after one. With epochs done as steps, ``--grace-period N`` means N
    epochs for every pruner, as it does for Ray's ASHA (``training_iteration`` counts from 1).

    ``final``: the report is of the trial's last epoch (set by ``_Pruning``). Pruning then saves nothing and
    would throw a finished trial away (its value, its checkpoints): a rung at the last epoch never prunes.
    """

    def __init__(self, trial: Any) -> None:
        self._trial = trial
        self.final = False

    def report(self, value: float, step: int) -> None:
        self._trial.report(value, step + 1)

    def should_prune(self) -> bool:
        return not self.final and self._trial.should_prune()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


class _Pruning(EachEpoch):
    """Optuna's pruning callback once per epoch (``EachEpoch``), told when an epoch is the trial's last."""

    def __init__(self, trial: EpochsDone, callback: type[L.Callback], metric: str) -> None:
        super().__init__(callback(trial, monitor=metric))
        self.trial = trial

    def epoch_done(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.trial.final = last_epoch(trainer)
        super().epoch_done(trainer, pl_module)


def last_epoch(trainer: L.Trainer) -> bool:
    """Whether the epoch ending now is the fit's last: ``max_epochs`` reached, or ``max_steps``."""
    epochs, steps = trainer.max_epochs, trainer.max_steps
    return bool(
        (epochs is not None and epochs > 0 and trainer.current_epoch + 1 >= epochs)
        or (steps is not None and steps > 0 and trainer.global_step >= steps)
    )


def suggest(trial: Any, param: Param) -> Any:
    """Ask an Optuna trial for one parameter of the space."""
    if param.type == "categorical":
        return param.from_optuna(trial.suggest_categorical(param.key, list(param.optuna_choices)))
    if param.type == "int":
        return trial.suggest_int(param.key, param.low, param.high, step=param.step or 1, log=param.log)
    return trial.suggest_float(param.key, param.low, param.high, step=param.step, log=param.log)


class _StopAtBudget:
    """Stops this worker once finished plus running trials (of every worker) reach ``n_trials``."""

    def __init__(self, n_trials: int) -> None:
        self.n_trials = n_trials

    def __call__(self, study: Any, trial: Any) -> None:
        now = progress(study)
        if now.finished + now.running >= self.n_trials:
            study.stop()


class _PrintTrial:
    """One line per finished trial: ``trial 3 COMPLETE val_loss=0.2695 (3 epochs, 13.3s)``."""

    def __init__(self, metric: str, worker: int | None) -> None:
        self.metric = metric
        self.worker = "" if worker is None else f" [worker {worker}]"

    def __call__(self, study: Any, trial: Any) -> None:
        value = ""
        if trial.value is not None:  # a pruned trial's value is its last report, not a result
            last = "" if trial.state.name == "COMPLETE" else "last "
            value = f" {last}{self.metric}={trial.value:.5g}"
        reason = f": {trial.user_attrs['fail_reason']}" if "fail_reason" in trial.user_attrs else ""
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        epochs = epochs_of(trial)
        print(
            f"trial {trial.number} {trial.state.name}{value} ({epochs} epoch{'s' if epochs != 1 else ''}, {seconds:.1f}s){self.worker}{reason}",
            flush=True,
        )


class _CheckpointRetention:
    """Keeps the checkpoints of the ``keep`` best complete trials only (``-1`` keeps all)."""

    def __init__(self, runner: TrialRunner, keep: int) -> None:
        self.runner = runner
        self.keep = keep

    def __call__(self, study: Any, trial: Any) -> None:
        if self.keep < 0:
            return
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        complete.sort(key=lambda t: t.value, reverse=self.runner.maximize)
        kept = {t.number for t in complete[: self.keep]}
        for done in trials:
            if done.state.name in ("COMPLETE", "PRUNED", "FAIL") and done.number not in kept:
                shutil.rmtree(self.runner.run_dir(str(done.number)).checkpoints, ignore_errors=True)
