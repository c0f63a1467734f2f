"""Shared values of the ``litforge tune`` tests: tiny trials, a small space, study readers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Seconds a tune command may take: ~30 s on an idle 2-core machine, far more on a loaded shared one.
TUNE_TIMEOUT = 1200

HERE = Path(__file__).resolve().parent

# Trials of a few seconds: 3 short epochs on digits, no checkpoint-heavy extras.
TINY_TRIAL = [
    "--trainer.max_epochs", "3",
    "--trainer.limit_train_batches", "4",
    "--trainer.limit_val_batches", "2",
    "--trainer.log_every_n_steps", "1",
    "--data.batch_size", "32",
    "--no-plots",
]  # fmt: skip

LR_SPACE: dict[str, Any] = {
    "metric": "val_loss",
    "direction": "minimize",
    "params": {
        "model.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True},
        "model.hidden_dim": {"type": "int", "low": 16, "high": 64, "step": 16},
    },
}


def load_study(url: str, name: str) -> Any:
    import optuna

    return optuna.load_study(study_name=name, storage=url)


def finished_trials(study: Any) -> list[Any]:
    return [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]


def check_dead_trial_sweeper(storage: Any) -> None:
    """A RUNNING trial without a heartbeat is failed and queued again once ``DeadTrialSweeper`` has seen it
    so for its grace period; one with a heartbeat is left to the heartbeat (``storage``: a heartbeat of
    a minute or more, so that the real clock makes nothing stale here)."""
    import optuna

    from litforge.tune.dead_trials import DeadTrialSweeper

    study = optuna.create_study(storage=storage, study_name="sweep")
    silent = study.ask()  # RUNNING without a heartbeat, as a worker killed right after creating it leaves it
    silent.suggest_float("x", 0, 1)
    now = [100.0]
    sweeper = DeadTrialSweeper(storage, grace_s=30, clock=lambda: now[0])

    def states() -> list[str]:
        return [t.state.name for t in study.get_trials()]

    sweeper.sweep(study)
    now[0] += 29.0
    sweeper.sweep(study)
    assert states() == ["RUNNING"]  # a live worker records the first heartbeat within milliseconds
    now[0] += 1.0
    sweeper.sweep(study)
    assert states() == ["FAIL", "WAITING"]  # failed, and queued again with the same parameters
    (retry,) = [t for t in study.get_trials() if t.state.name == "WAITING"]
    assert retry.system_attrs["failed_trial"] == silent.number and retry.params == silent.params

    beating = study.ask()
    study_id = storage.get_study_id_from_name("sweep")
    storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, beating.number))
    now[0] += 1000.0
    sweeper.sweep(study)
    assert study.get_trials()[beating.number].state.name == "RUNNING"


def raising_line() -> int:
    """The line of flaky_models.py where ``mode: raise`` raises (a trial's fail_reason names it)."""
    lines = (HERE / "flaky_models.py").read_text().splitlines()
    return next(number for number, text in enumerate(lines, 1) if 'raise RuntimeError("boom' in text)
