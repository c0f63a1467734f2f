"""A checkpoint interval in minutes: due once the time has passed, decided by rank 0 at a few check steps
only (no collective per step)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
from resilience_helpers import bare_trainer

from litforge.data import DigitsDataModule
from litforge.models import Classifier
from litforge.resilience import PeriodicCheckpoint, save_interval
from litforge.resilience.save_interval import MinutesInterval


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_due_after_the_minutes_with_a_broadcast_only_at_check_steps(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(save_interval.time, "monotonic", clock)
    broadcasts: list[int] = []
    strategy = SimpleNamespace(broadcast=lambda value, src: broadcasts.append(step) or value)
    trainer = SimpleNamespace(global_step=0, strategy=strategy)
    interval = MinutesInterval(1.0)
    interval.start(trainer)
    due_at = []
    for step in range(1, 200):  # one step per second
        clock.now, trainer.global_step = float(step), step
        if interval.due(trainer):
            due_at.append(step)
            interval.saved(trainer)
    assert due_at == [60, 120, 180]
    # the probe at step 10, then checks closing in on each due step (half the steps left each time)
    assert broadcasts[:7] == [10, 35, 48, 54, 57, 59, 60]
    assert len(broadcasts) < 25  # over 199 steps


def test_a_slower_run_is_checked_again_before_it_is_due(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(save_interval.time, "monotonic", clock)
    trainer = SimpleNamespace(global_step=0, strategy=SimpleNamespace(broadcast=lambda value, src: value))
    interval = MinutesInterval(1.0)
    interval.start(trainer)
    due_at = []
    for step in range(1, 100):
        clock.now += 1.0 if step <= 10 else 2.0  # the steps get slower after the probe
        trainer.global_step = step
        if interval.due(trainer):
            due_at.append((step, clock.now))
    (step, seconds), *_ = due_at
    assert 60 <= seconds <= 66 and step < 40  # on time, not 50 steps (100 s) after the probe


def test_periodic_checkpoint_saves_every_n_minutes(tmp_path: Path, monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(save_interval.time, "monotonic", clock)

    class Tick(L.Callback):  # every step takes 10 seconds
        def on_train_batch_end(self, *args) -> None:
            clock.now += 10.0

    periodic = PeriodicCheckpoint(
        tmp_path, every_n_train_steps=0, keep=10, on_epoch_end=False, every_n_minutes=2
    )
    trainer = bare_trainer(Tick(), periodic, max_steps=40)
    trainer.fit(Classifier(hidden_dim=8), DigitsDataModule(batch_size=32))
    assert sorted(p.name for p in tmp_path.glob("step-*.ckpt")) == [
        f"step-{s:08d}.ckpt" for s in (12, 24, 36)
    ]


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="every_n_minutes must be > 0"):
        MinutesInterval(0)


def test_fit_takes_the_interval_in_minutes_from_the_command_line(cli, tmp_path: Path) -> None:
    from cli_helpers import TINY_TRAINER

    steps_only = [
        "fit",
        *TINY_TRAINER,
        "--trainer.limit_train_batches",
        "16",
        "--checkpoint_every_n_steps",
        "0",
    ]
    every_few_ms = [*steps_only, "--checkpoint_every_n_minutes", "0.00001", "--run", "timed"]
    assert cli(*every_few_ms).returncode == 0
    run = tmp_path / "runs" / "classifier" / "timed"
    # first checked after 10 steps (to measure the step rate), then every few steps: mid-epoch saves
    assert any(int(p.stem.split("-")[1]) % 16 for p in (run / "checkpoints").glob("step-*.ckpt"))
    assert "checkpoint_every_n_minutes: 1.0e-05" in (run / "config.yaml").read_text()
    assert cli("test", "--config", str(run / "config.yaml"), "--ckpt_path", "last").returncode == 0

    assert cli(*steps_only, "--run", "untimed").returncode == 0
    untimed = tmp_path / "runs" / "classifier" / "untimed" / "checkpoints"
    assert all(int(p.stem.split("-")[1]) % 16 == 0 for p in untimed.glob("step-*.ckpt"))

    refused = cli(*steps_only, "--checkpoint_every_n_minutes", "-1")
    assert refused.returncode == 2 and "checkpoint_every_n_minutes" in refused.stderr
