"""Fast in-process checks: choosing the checkpoint to resume from, RNG state, loader states across an
epoch boundary, the finite-loss guard and the on-exception checkpoint."""

from __future__ import annotations

import os
import random
import signal
import stat
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from resilience_helpers import bare_trainer

from litforge.atomic_files import atomic_path, write_atomically
from litforge.data import DigitsDataModule
from litforge.data.seeded_sampler import SeededRandomSampler
from litforge.data.tensor_loader import TensorBatchLoader
from litforge.errors import UsageError
from litforge.models import Classifier
from litforge.resilience import (
    EXIT_PREEMPTED,
    NonFiniteLoss,
    Preempted,
    resilience_callbacks,
)
from litforge.resilience.resume import (
    EXCEPTION_CHECKPOINT,
    find_resume_checkpoint,
    remove_killed_writes,
    resolve_resume,
)
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
    half_written = tmp_path / ".step-00000008.ckpt.tmp-abc"
    half_written.write_bytes(b"half a write")
    assert find_resume_checkpoint(tmp_path) == newest
    assert half_written.exists(), "the search only reads: the file may be a live writer's"
    remove_killed_writes(tmp_path)  # what fit does once it holds the run's lock
    assert not list(tmp_path.glob(".*.tmp-*")), "a killed write's temporary file is removed"

    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.warns(UserWarning, match="skipping unreadable checkpoint: .*step-00000006"):
        assert find_resume_checkpoint(tmp_path) == previous
    previous.write_bytes(b"\x00garbage" * 10)  # corrupt
    with pytest.warns(UserWarning, match="step-00000004"):
        assert find_resume_checkpoint(tmp_path).name == "step-00000002.ckpt"


def test_atomic_write_has_a_plain_files_permissions_and_a_failed_one_changes_nothing(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"x")
    target = tmp_path / "checkpoints" / "best.ckpt"
    write_atomically(target, lambda handle: handle.write(b"complete"))
    assert target.read_bytes() == b"complete"
    # Not mkstemp's 0600: teammates (and a server under another user) read checkpoints like other files.
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)

    def dies_half_way(handle) -> None:
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(target, dies_half_way)
    assert target.read_bytes() == b"complete"
    assert not list(target.parent.glob(".*.tmp-*"))
    # a writer that checks the name (torch.export.save wants .pt2) gets one ending like the target's
    with atomic_path(tmp_path / "model.pt2", keep_suffix=True) as tmp:
        assert tmp.name.startswith(".model.pt2.tmp-") and tmp.suffix == ".pt2"
        tmp.write_bytes(b"archive")
    assert (tmp_path / "model.pt2").read_bytes() == b"archive"


def test_resolve_resume_modes(tmp_path: Path) -> None:
    from litforge.errors import UsageError

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
    with pytest.raises(UsageError, match=r"--resume: .*bad\.ckpt"):
        resolve_resume(str(tmp_path / "bad.ckpt"), tmp_path, run_is_fixed=False)


class StoredObject:
    """What a module's on_save_checkpoint may put in a checkpoint written by plain Lightning."""


def test_resume_auto_over_checkpoints_none_of_which_loads_is_refused_not_started_fresh(
    tmp_path: Path,
) -> None:
    """A run whose every checkpoint was refused (a class weights-only loading cannot read) was trained again
    from step 0 over its files, with "no checkpoint yet, starting fresh"."""
    (tmp_path / "last.ckpt").write_bytes(b"\x00garbage" * 10)
    state = {"state_dict": {}, "loops": {}, "global_step": 4, "epoch": 0, "meta": StoredObject()}
    torch.save(state, tmp_path / "step-00000004.ckpt")  # a class weights-only loading refuses
    with (
        pytest.warns(UserWarning, match="skipping unreadable"),
        pytest.raises(
            UsageError, match=r"none of the 2 checkpoints in .* loads .*--overwrite starts the run again"
        ),
    ):
        resolve_resume("auto", tmp_path, run_is_fixed=True)
    (tmp_path / "last.ckpt").unlink()
    (tmp_path / "step-00000004.ckpt").unlink()
    fake_checkpoint(tmp_path / EXCEPTION_CHECKPOINT, 7, age_s=0)  # never resumed from: a new run
    assert resolve_resume("auto", tmp_path, run_is_fixed=True) is None


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    torch.save(capture_rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(2), expected[2])


@pytest.mark.parametrize("fast_path", [True, False], ids=["TensorBatchLoader", "SeededRandomSampler"])
def test_a_state_from_an_epoch_stopped_early_resumes_with_the_next_epoch(fast_path: bool) -> None:
    """Lightning ends an epoch before the loader runs out (``limit_train_batches``): a checkpoint taken
    after that epoch's last batch must resume with the next epoch, drawn from the generator the stopped
    epoch left behind, not with the rest of the old epoch nor with a fresh generator."""
    from torch.utils.data import TensorDataset
    from torchdata.stateful_dataloader import StatefulDataLoader

    x = torch.arange(103)

    def loader():
        generator = torch.Generator().manual_seed(4)
        if fast_path:
            return TensorBatchLoader(x, batch_size=10, shuffle=True, generator=generator)
        sampler = SeededRandomSampler(103, generator)
        return StatefulDataLoader(TensorDataset(x), batch_size=10, sampler=sampler, generator=generator)

    def epoch(dl, number: int, batches: int) -> list[list[int]]:
        (dl.sampler if not fast_path else dl).set_epoch(number)  # Lightning: sampler.set_epoch
        iterator = iter(dl)
        return [next(iterator)[0].tolist() for _ in range(batches)]

    uninterrupted = loader()
    epoch(uninterrupted, 0, 5)
    state = uninterrupted.state_dict()  # the checkpoint after epoch 0's last (5th) batch
    expected = epoch(uninterrupted, 1, 11)

    resumed = loader()  # a new process: RestoreLoaderState sets the epoch, then loads the state
    resumed.load_state_dict(state)
    assert epoch(resumed, 1, 11) == expected
    same_epoch = loader()  # resuming epoch 0 itself continues it mid-epoch
    same_epoch.load_state_dict(state)
    assert epoch(same_epoch, 0, 6) == epoch(loader(), 0, 11)[5:]


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


def _six_step_trainer(root: Path, every_n_train_steps: int, *extra: L.Callback) -> L.Trainer:
    """One epoch of 6 steps, no validation, litforge's resilience callbacks writing into ``root``."""
    L.seed_everything(0, verbose=False)
    return bare_trainer(
        *resilience_callbacks(root, every_n_train_steps=every_n_train_steps),
        *extra,
        max_epochs=1,
        limit_train_batches=6,
    )


def _fit_failing(root: Path, failure: str) -> None:
    _six_step_trainer(root, 2).fit(
        ExplodingClassifier(failure=failure, hidden_dim=8), DigitsDataModule(batch_size=32)
    )


def test_non_finite_loss_stops_before_the_update_keeping_the_last_good_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLoss, match=r"training loss is nan at epoch 0, global step 3.*step-00000002"):
        _fit_failing(tmp_path, "nan")
    assert not (tmp_path / EXCEPTION_CHECKPOINT).exists()
    state = torch.load(find_resume_checkpoint(tmp_path), weights_only=True)["state_dict"]
    assert all(torch.isfinite(t).all() for t in state.values())


def test_a_nan_in_the_inputs_is_named_as_the_cause_not_the_learning_rate(tmp_path: Path) -> None:
    from usermods import DictBatchModel, DictData, DictSet, collate_dicts

    class NaNFeatureData(DictData):
        def train_dataloader(self):
            x = self.train_set.x.clone()
            x[10, 3] = float("nan")  # sample 10: in the second batch of 8
            rows = DictSet(x, self.train_set.y)
            return torch.utils.data.DataLoader(rows, batch_size=8, collate_fn=collate_dicts)

    with pytest.raises(NonFiniteLoss) as info:
        _six_step_trainer(tmp_path, 100).fit(DictBatchModel(), NaNFeatureData())
    message = str(info.value)
    assert "training loss is nan at epoch 0, global step 1" in message
    assert "inputs are not finite (batch['features']: 1 NaN/inf of 128)" in message
    assert "learning rate will not help" in message
    with pytest.raises(
        NonFiniteLoss, match=r"inputs are finite: the model diverged\. Try a lower learning rate"
    ):
        _fit_failing(tmp_path / "diverged", "nan")


class _Forecaster(L.LightningModule):
    """A regression head over a horizon of targets; a horizon of 0 makes them empty ``(B, 0)``: NaN MSE."""

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.net = torch.nn.Linear(4, max(horizon, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x)[:, : self.horizon], y)

    def train_dataloader(self):
        rows = list(zip(torch.randn(32, 4), torch.randn(32, self.horizon), strict=True))
        return torch.utils.data.DataLoader(rows, batch_size=8)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _LogOfZero(_Forecaster):
    def training_step(self, batch, batch_idx):
        return super().training_step(batch, batch_idx) * torch.log(torch.zeros(()))  # times log(0): -inf


def test_a_nan_before_any_update_is_not_called_divergence(tmp_path: Path) -> None:
    """A NaN at the first step cannot be divergence: an empty target is named, else the loss is blamed."""
    with pytest.raises(NonFiniteLoss) as empty:
        _six_step_trainer(tmp_path / "empty", 100).fit(_Forecaster(horizon=0))
    assert "The batch holds no values to learn from (batch[1] has shape (8, 0))" in str(empty.value)
    assert "diverged" not in str(empty.value)
    with pytest.raises(NonFiniteLoss) as loss:
        _six_step_trainer(tmp_path / "loss", 100).fit(_LogOfZero(horizon=1))
    assert "no update has happened yet, so this is not divergence: the loss itself is not finite" in str(
        loss.value
    )


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
    trainer = _six_step_trainer(tmp_path, 100, SignalAtStep3())
    with pytest.raises(
        Preempted, match=r"preempted by SIGUSR1: saved .*step-00000004\.ckpt at step 4"
    ) as info:
        trainer.fit(Classifier(hidden_dim=8), DigitsDataModule(batch_size=32))
    assert info.value.exit_code == EXIT_PREEMPTED == 75
    assert find_resume_checkpoint(tmp_path).name == "step-00000004.ckpt"
    assert signal.getsignal(signal.SIGUSR1) is not None  # handlers restored, not left pointing at litforge


class SignalAtBatch(L.Callback):
    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_preemption_inside_an_accumulation_window_saves_after_its_optimizer_step(tmp_path: Path) -> None:
    """Accumulated gradients are not in a checkpoint: a save after batch 4 of the window (4, 5) would
    resume without batch 4's part of step 3. The run goes on to batch 5's step and saves there, and a
    resume from it ends bit for bit where the uninterrupted run does."""

    def trainer(root: Path, *extra: L.Callback) -> L.Trainer:
        L.seed_everything(0, verbose=False)
        return bare_trainer(
            *resilience_callbacks(root, every_n_train_steps=100), *extra,
            max_epochs=1, limit_train_batches=12, accumulate_grad_batches=2,
        )  # fmt: skip

    def model() -> Classifier:
        L.seed_everything(0, verbose=False)
        return Classifier(hidden_dim=8)

    with pytest.raises(Preempted, match=r"step-00000003\.ckpt at step 3"):
        trainer(tmp_path / "stopped", SignalAtBatch(4)).fit(model(), DigitsDataModule(batch_size=32))
    saved = torch.load(tmp_path / "stopped" / "step-00000003.ckpt", weights_only=True)
    assert (
        saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"] == 6
    )  # batches 0-5: three whole windows

    reference = trainer(tmp_path / "reference")
    reference.fit(model(), DigitsDataModule(batch_size=32))
    resumed = trainer(tmp_path / "resumed")
    resumed.fit(
        model(), DigitsDataModule(batch_size=32), ckpt_path=tmp_path / "stopped" / "step-00000003.ckpt"
    )
    assert resumed.global_step == reference.global_step == 6
    for name, value in reference.lightning_module.state_dict().items():
        assert torch.equal(resumed.lightning_module.state_dict()[name], value), name


def test_a_mid_epoch_resume_into_an_epoch_of_another_length_is_refused(tmp_path: Path) -> None:
    """After batch 4 of 6, a resume with batch_size 16 (12 batches an epoch) cannot continue that epoch:
    refused in one line. From the epoch's end any batch size resumes."""

    def fit(root: Path, batch_size: int, epochs: int, ckpt_path: Path | None = None) -> L.Trainer:
        L.seed_everything(0, verbose=False)
        trainer = bare_trainer(  # the same 192 rows an epoch, in batches of this size
            *resilience_callbacks(root, every_n_train_steps=2),
            max_epochs=epochs,
            limit_train_batches=192 // batch_size,
        )
        trainer.fit(Classifier(hidden_dim=8), DigitsDataModule(batch_size=batch_size), ckpt_path=ckpt_path)
        return trainer

    first = fit(tmp_path / "a", 32, 1)
    first.save_checkpoint(tmp_path / "epoch-end.ckpt")
    with pytest.raises(
        UsageError, match="stopped after batch 4 of an epoch of 6 batches, and the training data now gives 12"
    ):
        fit(tmp_path / "b", 16, 2, tmp_path / "a" / "step-00000004.ckpt")
    assert fit(tmp_path / "c", 16, 2, tmp_path / "epoch-end.ckpt").global_step == 6 + 12


def test_restart_store_prefix_names_the_torchrun_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    from litforge.resilience.elastic_restart import restart_store_prefix

    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
    assert restart_store_prefix() is None  # not under torchrun: Lightning initialises as usual
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    first = restart_store_prefix()
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert first != restart_store_prefix()
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
    assert restart_store_prefix() is None


def test_a_new_lr_on_resume_keeps_the_schedules_progress_and_the_momentum_onecyclelr_cycles() -> None:
    """--model.lr 0.01 on a resume under OneCycleLR: the schedule's max_lr follows the new lr and the current
    lr keeps its place in the cycle; beta1, which OneCycleLR cycles itself, stays where the schedule put it."""
    from types import SimpleNamespace

    from torch.optim.lr_scheduler import OneCycleLR

    from litforge.resilience.changed_optimizer_settings import ChangedOptimizerSettings

    params = [torch.nn.Parameter(torch.zeros(2))]

    def build(lr: float) -> tuple[torch.optim.Optimizer, OneCycleLR]:
        optimizer = torch.optim.AdamW(params, lr=lr)
        return optimizer, OneCycleLR(optimizer, max_lr=lr, total_steps=20)

    old, old_schedule = build(0.001)
    for _ in range(5):
        old.step()
        old_schedule.step()
    new, new_schedule = build(0.01)
    trainer = SimpleNamespace(
        optimizers=[new], lr_scheduler_configs=[SimpleNamespace(scheduler=new_schedule)]
    )
    callback = ChangedOptimizerSettings()
    callback.on_fit_start(trainer, None)  # as configure_optimizers() built them
    new.load_state_dict(old.state_dict())  # what Lightning restores
    new_schedule.load_state_dict(old_schedule.state_dict())
    callback.on_train_start(trainer, None)
    group, saved = new.param_groups[0], old.param_groups[0]
    assert group["betas"] == saved["betas"] != (0.95, 0.999)  # mid-cycle, not the cycle's start
    assert group["max_lr"] == 0.01 and group["initial_lr"] == pytest.approx(0.01 / 25)
    assert group["lr"] == pytest.approx(saved["lr"] * 10)
    assert new_schedule.base_lrs == [pytest.approx(0.01 / 25)]


@pytest.mark.parametrize(
    ("changed", "lr_after"),
    [({"dropout": 0.2}, 0.0005), ({"lr": 0.1}, 0.1)],
    ids=["another-argument-keeps-the-plateaus-reduction", "a-new-lr-is-taken"],
)
def test_a_resume_puts_back_an_lr_without_a_schedule_only_when_a_changed_argument_asked_for_it(
    changed: dict, lr_after: float
) -> None:
    """No initial_lr (ReduceLROnPlateau, or the user's own code, moves lr): a restored 0.0005 is a reduction
    to keep, unless the resume's --model.lr asked for the built value."""
    from types import SimpleNamespace

    from litforge.resilience.changed_optimizer_settings import ChangedOptimizerSettings

    params = [torch.nn.Parameter(torch.zeros(2))]
    saved = torch.optim.Adam(params, lr=0.001)
    saved.param_groups[0]["lr"] = 0.0005  # reduced on a plateau before the checkpoint
    built = torch.optim.Adam(params, lr=changed.get("lr", 0.001))
    trainer = SimpleNamespace(optimizers=[built], lr_scheduler_configs=[])
    callback = ChangedOptimizerSettings(changed)
    callback.on_fit_start(trainer, None)
    built.load_state_dict(saved.state_dict())
    callback.on_train_start(trainer, None)
    assert built.param_groups[0]["lr"] == lr_after


def test_a_failed_evaluation_leaves_its_folder_as_it_found_it(tmp_path: Path) -> None:
    """predict/ of an earlier predict that worked: a failed one's new event file goes, its config.yaml is
    put back; a folder the failed command made goes whole."""
    from litforge.engine.folder_snapshot import FolderSnapshot

    folder = tmp_path / "predict"
    folder.mkdir()
    (folder / "config.yaml").write_text("model: earlier\n")
    (folder / "events.out.tfevents.1").write_bytes(b"earlier")
    snapshot = FolderSnapshot.take(folder)
    (folder / "config.yaml").write_text("model: failed\n")
    (folder / "events.out.tfevents.2").write_bytes(b"failed")
    snapshot.restore()
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "events.out.tfevents.1"]
    assert (folder / "config.yaml").read_text() == "model: earlier\n"

    made = FolderSnapshot.take(tmp_path / "test")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "config.yaml").write_text("model: failed\n")
    made.restore()
    assert not (tmp_path / "test").exists()


def test_a_restored_schedule_shorter_than_asked_is_refused_and_a_longer_one_noted(capsys) -> None:
    """OneCycleLR restored with total_steps=100: a fit of 150 steps is refused before a step; one of 50 (a
    smaller max_epochs on resume) goes on with a note; CosineAnnealingLR by its T_max alike."""
    from types import SimpleNamespace

    from litforge.resilience.schedule_horizon import ScheduleHorizon

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=100)
    trainer = SimpleNamespace(
        lr_scheduler_configs=[SimpleNamespace(scheduler=cycle, interval="step")], is_global_zero=True
    )
    check = ScheduleHorizon()
    check.built = [150]
    with pytest.raises(UsageError, match="OneCycleLR was built for 100 steps and this fit asks for 150"):
        check.on_train_start(trainer, None)
    check.built = [50]
    check.on_train_start(trainer, None)
    assert "built for 100 steps and this fit ends after 50" in capsys.readouterr().err
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    trainer.lr_scheduler_configs = [SimpleNamespace(scheduler=cosine, interval="epoch")]
    check.built = [20]
    with pytest.raises(UsageError, match="10 epochs and this fit asks for 20: past its end it raises the"):
        check.on_train_start(trainer, None)
    # a config's lr_scheduler has a fixed T_max, the same as built: a longer resume was let through silently
    trainer.ckpt_path, trainer.max_epochs, check.built = "last.ckpt", 16, [10]
    check.on_train_start(trainer, None)
    assert "CosineAnnealingLR ends after 10 epochs and this fit trains for 16: past its end its learning" in (
        capsys.readouterr().err
    )
    trainer.lr_scheduler_configs = [SimpleNamespace(scheduler=cycle, interval="step")]
    trainer.estimated_stepping_batches, check.built = 120, [100]
    with pytest.raises(
        UsageError, match="OneCycleLR ends after 100 steps and this fit trains for 120: past its"
    ):
        check.on_train_start(trainer, None)


def test_a_fit_that_failed_at_once_removes_its_own_run_not_a_neighbours(tmp_path) -> None:
    """The first trials of ``tune --workers 2`` both find ``trials/`` missing: the one that fails before its
    first step removed the whole of it, with the other worker's running trial inside (FileNotFoundError on
    its next log write)."""
    from litforge.engine.run_resolution import remove_made_run

    trials = tmp_path / "search" / "trials"
    (trials / "0" / "checkpoints").mkdir(parents=True)
    (trials / "1").mkdir()
    (trials / "1" / "events.out.tfevents").write_text("running")
    remove_made_run(trials / "0", outermost=tmp_path / "search")
    assert not (trials / "0").exists() and (trials / "1" / "events.out.tfevents").is_file()
    # alone, the folders it made above its run go too, up to the first that existed
    remove_made_run(trials / "1", outermost=tmp_path / "search")
    assert list(tmp_path.iterdir()) == []


class StopAtBatch(L.Callback):
    """Stands in for a kill: raises before batch ``batch`` of the epoch runs."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.batch:
            raise RuntimeError("killed")


def test_a_resume_inside_an_accumulation_window_never_rewrites_the_checkpoint_it_resumed_from(
    tmp_path: Path,
) -> None:
    """Resumed from step-2 (saved as batch 3 closed the window 2-3), batch 4 only accumulates at step 2: a
    save there used to replace step-2's file with a state missing batch 4's gradients, so a second kill and
    resume from it trained another run. Nor is a file saved inside the first window (step 0)."""

    def fit(**resume: Path) -> None:
        L.seed_everything(0, verbose=False)
        trainer = bare_trainer(
            *resilience_callbacks(tmp_path, every_n_train_steps=2), StopAtBatch(5),
            max_epochs=1, limit_train_batches=12, accumulate_grad_batches=2,
        )  # fmt: skip
        L.seed_everything(0, verbose=False)
        with pytest.raises(RuntimeError, match="killed"):
            trainer.fit(Classifier(hidden_dim=8), DigitsDataModule(batch_size=32), **resume)

    fit()
    saved = tmp_path / "step-00000002.ckpt"
    assert sorted(p.name for p in tmp_path.glob("step-*.ckpt")) == [saved.name]
    before = saved.read_bytes()
    batches = torch.load(saved, weights_only=True)["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    assert batches["current"]["processed"] == 4  # two whole windows
    fit(ckpt_path=saved)  # batch 4 ran, then the second kill
    assert saved.read_bytes() == before


class SignalAtEpochEnd(L.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_preemption_at_an_epochs_end_keeps_that_epochs_logged_metrics(tmp_path: Path) -> None:
    """Lightning writes ``self.log(on_epoch=True)`` values to the loggers after the epoch-end hooks, and a
    resume does not run the epoch again: the stop waits for the next epoch's start (the save does not)."""
    import usermods
    from lightning.pytorch.loggers import CSVLogger

    L.seed_everything(0, verbose=False)
    trainer = bare_trainer(
        *resilience_callbacks(tmp_path, every_n_train_steps=100), SignalAtEpochEnd(),
        max_epochs=3, limit_train_batches=4, logger=CSVLogger(tmp_path, name="", version=""),
    )  # fmt: skip
    with pytest.raises(Preempted, match=r"step-00000004\.ckpt at step 4"):
        trainer.fit(usermods.EpochTrainAccuracy(), usermods.MyDataModule())
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    epoch_rows = [dict(zip(header, row.split(","), strict=True)) for row in rows[1:]]
    assert [row["epoch"] for row in epoch_rows if row.get("train_acc")] == ["0"]


def test_a_resume_on_another_number_of_torch_threads_gets_a_note(capsys) -> None:
    """A CPU matmul splits its sums by thread: a resume on other threads differs in the last bits."""
    from types import SimpleNamespace

    from litforge.resilience.rng_state import RNGState

    saved = RNGState().state_dict()
    assert saved["torch_threads"] == torch.get_num_threads()
    resumed = RNGState()
    resumed.load_state_dict({**saved, "torch_threads": torch.get_num_threads() + 1})
    on_cpu = SimpleNamespace(is_global_zero=True, strategy=SimpleNamespace(root_device=torch.device("cpu")))
    resumed.on_train_start(on_cpu, None)
    assert f"trained on {torch.get_num_threads() + 1} torch threads and resumes on" in capsys.readouterr().err
    same = RNGState()
    same.load_state_dict(saved)
    same.on_train_start(on_cpu, None)
    assert "torch threads" not in capsys.readouterr().err
