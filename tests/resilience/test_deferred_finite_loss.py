"""The finite-loss guard without a host sync per step (what it does on accelerators): losses are read every
N steps and before every checkpoint, so a NaN still never reaches a checkpoint file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from resilience_helpers import bare_trainer

from litforge.data import DigitsDataModule
from litforge.models import Classifier
from litforge.resilience import FiniteLossGuard, NonFiniteLoss, PeriodicCheckpoint
from litforge.resilience.pending_losses import PendingLosses
from litforge.resilience.resume import find_resume_checkpoint


class NanAtStep3(Classifier):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.trainer.global_step == 3 else loss


class Unreadable(torch.Tensor):
    """A loss whose value cannot be read: on an accelerator, reading it would wait for the device."""

    def item(self) -> float:
        raise AssertionError("the loss was read on the host")

    def __bool__(self) -> bool:
        raise AssertionError("the loss was read on the host")


def test_collecting_a_loss_reads_nothing_on_the_host() -> None:
    guard = FiniteLossGuard(check_every_n_steps=50)
    guard._every = 50  # what setup decides from check_every_n_steps
    trainer = SimpleNamespace(current_epoch=0, global_step=7, world_size=1)
    guard.on_before_backward(trainer, None, torch.tensor(2.0).as_subclass(Unreadable))  # type: ignore[arg-type]
    assert len(guard._pending) == 1


def test_pending_losses_name_the_first_bad_step_and_start_over() -> None:
    pending = PendingLosses()
    for step, value in enumerate([1.0, 2.0, float("inf"), float("nan")]):
        pending.add(torch.tensor(value), epoch=1, global_step=step)
    bad = pending.first_non_finite()
    assert bad is not None and (bad.value, bad.epoch, bad.global_step) == (float("inf"), 1, 2)
    assert len(pending) == 0 and pending.first_non_finite() is None


def test_a_deferred_check_stops_before_the_next_checkpoint(tmp_path: Path) -> None:
    """Checked every 5 steps, the NaN of step 3 is found when step 4's checkpoint is about to be written."""
    L.seed_everything(0, verbose=False)
    trainer = bare_trainer(
        FiniteLossGuard(tmp_path, check_every_n_steps=5),
        PeriodicCheckpoint(tmp_path, every_n_train_steps=2),
        max_epochs=1,
        limit_train_batches=6,
    )
    with pytest.raises(
        NonFiniteLoss, match=r"loss is nan at epoch 0, global step 3 \(read at step 4.*step-00000002"
    ):
        trainer.fit(NanAtStep3(hidden_dim=8), DigitsDataModule(batch_size=32))
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["step-00000002.ckpt"]
    state = torch.load(find_resume_checkpoint(tmp_path), weights_only=True)["state_dict"]
    assert all(torch.isfinite(t).all() for t in state.values())


def test_cpu_checks_every_step_and_accelerators_every_log_interval() -> None:
    def every(device: str, **kwargs) -> int:
        guard = FiniteLossGuard(**kwargs)
        strategy = SimpleNamespace(root_device=torch.device(device))
        guard.setup(
            SimpleNamespace(strategy=strategy, log_every_n_steps=25, checkpoint_callbacks=[]), None, "fit"
        )
        return guard._every

    assert every("cpu") == 1
    assert every("cuda") == 25
    assert every("cuda", check_every_n_steps=3) == 3
