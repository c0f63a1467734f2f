"""Trials whose worker died are failed and retried: ``litforge tune`` run again after a kill -9 finishes.

litforge tune --space configs/digits_search.yaml   # kill -9 it, run it again: the killed trial runs again

On a storage with a heartbeat (the SQL ones, ``litforge.tune.optuna_factories.make_storage``) a RUNNING trial
is dead when

- its heartbeat is older than the grace period: its worker stopped (Optuna's ``fail_stale_trials``), or
- it has had no heartbeat at all for the grace period: its worker was killed after Optuna created the
  trial and before the trial's first heartbeat, milliseconds later. Optuna never fails such a trial (a
  trial made with ``study.ask()`` has no heartbeat either), so every later worker would wait for it.

Dead trials are marked FAIL and queued again with the same parameters by the storage's stale-trial callback
(``RetryHeartbeatStaleTrialCallback``; the retry's ``failed_trial`` system attribute names the original).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from litforge._compat.optuna import running_trials_without_heartbeat

STALE_AFTER_HEARTBEATS = 3  # the grace period, in heartbeat intervals


def has_heartbeat(storage: Any) -> bool:
    """Whether ``storage`` records trial heartbeats (so that dead workers' trials can be told apart)."""
    from optuna.storages import RDBStorage

    return isinstance(storage, RDBStorage) and storage.get_heartbeat_interval() is not None


class DeadTrialSweeper:
    """Fails (and queues the retry of) the dead RUNNING trials of a study; see the module docstring.

    A trial without a heartbeat counts as dead once this sweeper has seen it without one for ``grace_s``
    seconds of its own ``clock``: the workers' clocks and time zones, which set a trial's start time, do
    not matter.

    Args:
        storage: the study's heartbeat storage (an ``optuna.storages.RDBStorage``).
        grace_s: the storage's grace period in seconds.
        clock: seconds from an arbitrary start (``time.monotonic``).
    """

    def __init__(self, storage: Any, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self.grace_s = grace_s
        self.clock = clock
        self._first_seen: dict[
            int, float
        ] = {}  # trial id -> when this sweeper first saw it without heartbeat

    def sweep(self, study: Any) -> None:
        """Fail the dead trials of ``study`` now and queue their retries."""
        from optuna.storages import fail_stale_trials

        fail_stale_trials(study)  # heartbeat older than the grace period
        now = self.clock()
        study_id = self.storage.get_study_id_from_name(study.study_name)
        silent = running_trials_without_heartbeat(self.storage, study_id)
        self._first_seen = {trial_id: self._first_seen.get(trial_id, now) for trial_id in silent}
        for trial_id, seen in list(self._first_seen.items()):
            if now - seen >= self.grace_s:
                del self._first_seen[trial_id]
                self._fail(study, trial_id)

    def _fail(self, study: Any, trial_id: int) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        try:
            self.storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            return  # finished meanwhile, or another worker failed it first (and queued its retry)
        retry = self.storage.get_heartbeat_stale_trial_callback()
        if retry is not None:
            retry(study, self.storage.get_trial(trial_id))
