"""Optuna storages, samplers and pruners from ``litforge tune`` flags.

litforge tune --space configs/digits_search.yaml --storage postgresql://user@host/db --workers 2

Storage URLs: ``sqlite:///path.db`` (the default, ``<out>/study.db``), ``postgresql://...`` or
``mysql://...`` (many machines), ``journal:///path.log`` (Optuna's journal file). SQL storages get a
heartbeat, so a trial whose worker died (kill -9, a lost machine) is marked FAIL and retried with the
same parameters; see ``docs/tune.md`` for why SQLite is the local default.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from litforge.errors import UsageError
from litforge.tune.dead_trials import STALE_AFTER_HEARTBEATS
from litforge.tune.rungs import Rung, make_rung_pruner, parse_rungs
from litforge.tune.space import SearchSpace

FINISHED = ("COMPLETE", "PRUNED")
# Chosen by measurement on digits (benchmarks/hpo_pruning.py, 30 trials x 20 epochs; docs/tune.md):
# rungs 1:4,6:3 was picked on sampler seeds 0-29 (replayed) and then measured on 60 fresh seeds (30-89):
# 0.237x the epochs of an unpruned search, 0.28 points below its best accuracy (SE 0.05). Successive
# halving (rungs 1, 3, 9 epochs; the earlier default) measured 0.210x and -0.34 on the same seeds: its
# rung at 9 epochs cuts among good trials whose differences are noise.
DEFAULT_PRUNER = "rungs"
HALVING_GRACE_EPOCHS = 1  # successive halving, hyperband and Ray's ASHA: the first rung (min_resource)
MEDIAN_GRACE_EPOCHS = 3  # the median pruner's warm-up
DEFAULT_REDUCTION_FACTOR = 3
MEDIAN_STARTUP_TRIALS = 5
DEFAULT_RUNGS = "1:4,6:3"  # --pruner rungs: after 1 epoch keep the best quarter, after 6 the best third
_OPEN_ATTEMPTS = 5
_HEARTBEAT_RETRIES = 3  # a trial whose worker dies (kill -9, OOM) runs again at most this often
_OPENED: list[Any] = []  # the SQL storages this process opened; ``close_storages`` closes them


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError("the Optuna backend needs Optuna: pip install 'litforge[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # litforge prints one line per trial
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def make_storage(url: str, heartbeat_s: int) -> Any:
    """An Optuna storage for ``url``; SQL storages record a heartbeat every ``heartbeat_s`` seconds and
    retry trials whose heartbeat is older than three intervals (``litforge.tune.dead_trials``)."""
    import_optuna()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if url.startswith("journal://"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url.removeprefix("journal://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise UsageError(
            f"--storage {url}: expected sqlite:///FILE, postgresql://..., mysql://... or journal:///FILE"
        )
    url = with_driver(url)
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite:///") and "?" not in url:  # with query parameters, SQLAlchemy reads them
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = {"creator": partial(connect_sqlite, path)}
    for attempt in itertools.count(1):
        try:
            storage = RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=heartbeat_s,
                grace_period=STALE_AFTER_HEARTBEATS * heartbeat_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=_HEARTBEAT_RETRIES),
            )
            _OPENED.append(storage)
            return storage
        except ImportError as error:
            raise UsageError(
                f"--storage {url}: missing database driver ({error}); pip install 'litforge[tune]'"
            ) from None
        except Exception as error:  # sqlalchemy errors: bad URL, server down, authentication
            message = " ".join(str(error).split())
            if attempt < _OPEN_ATTEMPTS and _lost_creation_race(message):
                time.sleep(0.2 * attempt)
                continue
            raise UsageError(f"--storage {url}: cannot open ({message[:300]})") from None


def _lost_creation_race(message: str) -> bool:
    """Optuna creates a new database's tables and version row without a lock, so of several processes
    opening a new study database at once (workers started together, a dashboard) all but one can fail
    (measured: 3 of 10 rounds of 4 processes on SQLite). Such a loser finds everything made on a retry."""
    return any(sign in message for sign in ("already exists", "UNIQUE constraint", "duplicate key", "locked"))


def connect_sqlite(path: Path) -> sqlite3.Connection:
    """A connection to a local study database, set up for several worker processes on one machine.

    Write-ahead logging lets workers read (sampling, pruning) while another writes an epoch's value, and
    ``synchronous=NORMAL`` syncs the log at checkpoints instead of at every commit. A killed process
    loses nothing it committed and never leaves the file half-written; only a power cut can undo the
    last commits. Measured: one epoch's report and pruning check, 4.5 ms -> 2.6 ms. A locked database is
    waited for (60 s) instead of failing.
    """
    connection = sqlite3.connect(path, timeout=60, check_same_thread=False)  # the heartbeat is a thread
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def close_storages() -> None:
    """Close this process's connections to the SQL storages it opened. SQLite removes ``study.db-wal`` and
    ``study.db-shm`` when the last connection to a database closes; a process that exits with connections
    open leaves both files beside ``study.db``."""
    while _OPENED:
        storage = _OPENED.pop()
        storage.remove_session()
        storage.engine.dispose()


def requeue_interrupted(study: Any) -> list[int]:
    """Queue again the parameters of each trial that Ctrl+C stopped (Optuna marks it FAIL with no reason), so
    the same command run again starts with them, as it does for a trial whose worker was killed (the
    heartbeat's retry). A trial already retried, or failed with a reason, is left alone. Returns their numbers."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial") for t in trials} | {
        t.user_attrs.get("retry_of") for t in trials
    }
    stopped = [
        t
        for t in trials
        if t.state.name == "FAIL"
        and "fail_reason" not in t.user_attrs
        and t.number not in retried
        and len(t.system_attrs.get("retry_history", [])) < _HEARTBEAT_RETRIES  # the heartbeat gave up on it
    ]
    for trial in stopped:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    return [trial.number for trial in stopped]


def fold_write_ahead_log(url: str) -> None:
    """Move a local study database's write-ahead log into the file itself (``wal_checkpoint(TRUNCATE)``),
    so that ``study.db`` alone, copied or shared, holds the whole study; a busy database is left as it is."""
    if not url.startswith("sqlite:///") or "?" in url:
        return
    path = Path(url.removeprefix("sqlite:///"))
    if not path.is_file():
        return
    with contextlib.closing(sqlite3.connect(path, timeout=5)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def with_driver(url: str) -> str:
    """``postgresql://`` -> ``postgresql+psycopg2://`` when only psycopg2 is installed (SQLAlchemy 2.1
    picks psycopg 3 for a bare ``postgresql://``; ``litforge[tune]`` ships psycopg2-binary)."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def make_sampler(name: str, space: SearchSpace, seed: int) -> Any:
    """``tpe`` (default), ``random``, ``cmaes`` or ``grid``, all seeded."""
    optuna = import_optuna()
    if name == "tpe":
        # constant_liar: parallel workers do not all sample next to the same running trial.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise UsageError(
                "--sampler cmaes needs the cmaes package: pip install 'litforge[tune]'"
            ) from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "grid":
        return optuna.samplers.GridSampler({p.key: p.optuna_grid() for p in space.params}, seed=seed)
    raise UsageError(f"--sampler {name}: expected tpe, random, cmaes or grid")


def default_grace_epochs(pruner: str) -> int:
    """``--grace-period`` when not given: the measured warm-up of ``pruner`` (Ray's ASHA: a halving one)."""
    return MEDIAN_GRACE_EPOCHS if pruner == "median" else HALVING_GRACE_EPOCHS


def make_pruner(name: str, grace_epochs: int, reduction_factor: int, rungs: tuple[Rung, ...] = ()) -> Any:
    """``none``, ``median``, ``hyperband``, ``successive-halving`` (none stops a trial before
    ``grace_epochs`` validation epochs) or ``rungs`` (``litforge.tune.rungs``)."""
    optuna = import_optuna()
    if name == "rungs":
        return make_rung_pruner(rungs or parse_rungs(DEFAULT_RUNGS))
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=MEDIAN_STARTUP_TRIALS,
            n_warmup_steps=grace_epochs,  # steps are epochs done
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=grace_epochs, reduction_factor=reduction_factor)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=grace_epochs, reduction_factor=reduction_factor
        )
    raise UsageError(f"--pruner {name}: expected none, median, hyperband, successive-halving or rungs")


@dataclass(frozen=True)
class Progress:
    """Where a study stands: trials that count towards ``n_trials`` and trials still running."""

    finished: int
    failed: int
    running: int
    complete: int


def progress(study: Any) -> Progress:
    """Count trials. A trial that raised or hit NaN counts as finished (it was tried); a trial whose
    worker died has no ``fail_reason`` and does not count: its retry does."""
    finished = failed = running = complete = 0
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name
        if state in FINISHED:
            finished += 1
            complete += state == "COMPLETE"
        elif state == "FAIL" and "fail_reason" in trial.user_attrs:
            failed += 1
        elif state == "RUNNING":  # a WAITING trial (a retry) is picked up by the next worker
            running += 1
    return Progress(finished + failed, failed, running, complete)
