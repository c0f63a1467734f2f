"""Optuna's private names litforge uses: the RDB storage's trial table (no public API says whether a trial
has ever sent a heartbeat)."""

from __future__ import annotations

from typing import Any


def running_trials_without_heartbeat(storage: Any, study_id: int) -> list[int]:
    """The ids of the study's RUNNING trials that never recorded a heartbeat (``optuna.storages._rdb``)."""
    from optuna.storages._rdb import models
    from optuna.trial import TrialState
    from sqlalchemy.orm import Session

    trials = models.TrialModel
    with Session(storage.engine) as session:
        query = session.query(trials.trial_id).filter(
            trials.study_id == study_id,
            trials.state == TrialState.RUNNING,
            ~trials.heartbeats.any(),
        )
        return [trial_id for (trial_id,) in query]
