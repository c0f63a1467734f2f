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
