"""Fast in-process checks: choosing the checkpoint to resume from, RNG state, the epoch-seeded sampler,
the finite-loss guard and the on-exception checkpoint."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from litforge.data import DigitsDataModule
from litforge.data.samplers import EpochShuffleSampler
from litforge.models import Classifier
from litforge.resilience import (
    EXIT_PREEMPTED,
    AtomicCheckpointIO,
    NonFiniteLoss,
    Preempted,
    resilience_callbacks,
)
from litforge.resilience.resume import EXCEPTION_CHECKPOINT, find_resume_checkpoint, resolve_resume
from litforge.resilience.rng_state import capture_rng_state, restore_rng_state


def fake_checkpoint(path: Path, step: int, age_s: float) -> Path:
    torch.save(
        {"state_dict": {"w": torch.ones(3) * step}, "loops": {}, "global_step": step, "epoch": 0}, path
    )
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_newest_valid_checkpoint_wins_and_damaged_ones_are_skipped(tmp_path: Path) -> None:
    fake_checkpoint(tmp_path / "step-00000002.ckpt", 2, age_s=30)
    previous = fake_checkpoint(tmp_path / "step-00000004.ckpt", 4, age_s=20)
    newest = fake_checkpoint(tmp_path / "step-00000006.ckpt", 6, age_s=10)
    fake_checkpoint(tmp_path / EXCEPTION_CHECKPOINT, 7, age_s=0)  # mid-step state: never chosen
    (tmp_path / ".step-00000008.ckpt.tmp-abc").write_bytes(b"half a write")
    assert find_resume_checkpoint(tmp_path) == newest
    assert not list(tmp_path.glob(".*.tmp-*")), "a killed write's temporary file is removed"

    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.warns(UserWarning, match="skipping unreadable checkpoint .*step-00000006"):
        assert find_resume_checkpoint(tmp_path) == previous
    previous.write_bytes(b"\x00garbage" * 10)  # corrupt
    with pytest.warns(UserWarning, match="step-00000004"):
        assert find_resume_checkpoint(tmp_path).name == "step-00000002.ckpt"


def test_resolve_resume_modes(tmp_path: Path) -> None:
    from litforge.cli.errors import UsageError

    assert resolve_resume("never", tmp_path, run_is_fixed=True) is None
    assert resolve_resume("auto", tmp_path / "missing", run_is_fixed=True) is None  # a new run starts
    with pytest.raises(UsageError, match="--resume auto needs a fixed run name"):
        resolve_resume("auto", tmp_path, run_is_fixed=False)
    with pytest.raises(UsageError, match="no such file"):
        resolve_resume(str(tmp_path / "nope.ckpt"), tmp_path, run_is_fixed=False)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    ckpt = fake_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", 3, age_s=0)
    assert resolve_resume(str(tmp_path / "run"), tmp_path, run_is_fixed=False) == ckpt  # a run folder
    assert resolve_resume(str(ckpt), tmp_path, run_is_fixed=False) == ckpt
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot resume from"):
        resolve_resume(str(tmp_path / "bad.ckpt"), tmp_path, run_is_fixed=False)


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    torch.save(capture_rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(2), expected[2])


def test_epoch_shuffle_sampler_order_depends_only_on_seed_and_epoch() -> None:
    sampler = EpochShuffleSampler(50, seed=5)
    first = list(sampler)
    assert sorted(first) == list(range(50)) and list(sampler) == first  # re-iterating: same epoch order
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    resumed = iter(EpochShuffleSampler(50, seed=5))
    resumed.load_state_dict({"epoch": 1, "yielded": 20})
    assert list(resumed) == second[20:]


class ExplodingClassifier(Classifier):
    """Loss turns NaN (or the step raises) at global step 3."""

    def __init__(self, failure: str = "nan", **kwargs) -> None:
        super().__init__(**kwargs)
        self.failure = failure

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.trainer.global_step == 3:
            if self.failure == "raise":
                raise RuntimeError("disk on fire")
            return loss * float("nan")
        return loss


def _fit_failing(root: Path, failure: str) -> None:
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=6,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
        callbacks=resilience_callbacks(root, every_n_train_steps=2),
    )
    trainer.fit(ExplodingClassifier(failure=failure, hidden_dim=8), DigitsDataModule(batch_size=32))


def test_non_finite_loss_stops_before_the_update_keeping_the_last_good_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLoss, match=r"training loss is nan at epoch 0, global step 3.*step-00000002"):
        _fit_failing(tmp_path, "nan")
    assert not (tmp_path / EXCEPTION_CHECKPOINT).exists()
    state = torch.load(find_resume_checkpoint(tmp_path), weights_only=True)["state_dict"]
    assert all(torch.isfinite(t).all() for t in state.values())


def test_python_exception_saves_on_exception_checkpoint_that_auto_resume_ignores(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="disk on fire"):
        _fit_failing(tmp_path, "raise")
    assert (tmp_path / EXCEPTION_CHECKPOINT).is_file()
    assert find_resume_checkpoint(tmp_path).name == "step-00000002.ckpt"


class SignalAtStep3(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == 3:
            os.kill(os.getpid(), signal.SIGUSR1)


def test_sigusr1_saves_at_the_next_step_boundary_and_raises_preempted(tmp_path: Path) -> None:
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=6,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
        callbacks=[*resilience_callbacks(tmp_path, every_n_train_steps=100), SignalAtStep3()],
    )
    with pytest.raises(
        Preempted, match=r"preempted by SIGUSR1: saved .*step-00000004\.ckpt at step 4"
    ) as info:
        trainer.fit(Classifier(hidden_dim=8), DigitsDataModule(batch_size=32))
    assert info.value.exit_code == EXIT_PREEMPTED == 75
    assert find_resume_checkpoint(tmp_path).name == "step-00000004.ckpt"
    assert signal.getsignal(signal.SIGUSR1) is not None  # handlers restored, not left pointing at litforge
