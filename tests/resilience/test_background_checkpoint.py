"""Periodic checkpoints written in the background: a point-in-time copy of the state, in order, pruned only
once complete, errors surfaced; kill -9 in the middle of such a write: see test_kill_resume.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from resilience_helpers import bare_trainer

from litforge.data import DigitsDataModule
from litforge.models import Classifier
from litforge.resilience import AtomicCheckpointIO, PeriodicCheckpoint
from litforge.resilience.async_checkpoint import (
    BackgroundCheckpointIO,
    HostSnapshot,
    install_background_writer,
)
from litforge.resilience.atomic_checkpoint_io import WRITE_DELAY_ENV


class RecordStates(L.Callback):
    """The model's weights after every step, and the checkpoint IO the trainer uses meanwhile."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}
        self.io_types: set[type] = set()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.states[trainer.global_step] = {k: v.clone() for k, v in pl_module.state_dict().items()}
        self.io_types.add(type(trainer.strategy.checkpoint_io))


def test_a_background_save_holds_the_state_of_its_step(tmp_path: Path, monkeypatch) -> None:
    """Training runs on while each file is written (slowly here), yet every file holds its own step."""
    monkeypatch.setenv(WRITE_DELAY_ENV, "0.2")
    recorder = RecordStates()
    periodic = PeriodicCheckpoint(tmp_path, every_n_train_steps=2, keep=10, on_epoch_end=False)
    trainer = bare_trainer(recorder, periodic, max_steps=8)
    trainer.fit(Classifier(hidden_dim=8), DigitsDataModule(batch_size=32))

    assert recorder.io_types == {BackgroundCheckpointIO}
    assert type(trainer.strategy.checkpoint_io) is AtomicCheckpointIO  # given back after the fit
    saved = sorted(tmp_path.glob("step-*.ckpt"))
    assert [p.name for p in saved] == [f"step-{s:08d}.ckpt" for s in (2, 4, 6, 8)]
    for path in saved:
        checkpoint = torch.load(path, weights_only=True)
        expected = recorder.states[checkpoint["global_step"]]
        assert checkpoint["state_dict"].keys() == expected.keys()
        assert all(torch.equal(checkpoint["state_dict"][k], v) for k, v in expected.items()), path.name
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_older_files_are_pruned_only_once_the_new_one_is_complete(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    class Listing(AtomicCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
            seen.append(sorted(p.name for p in Path(path).parent.glob("step-*.ckpt")))
            super().save_checkpoint(checkpoint, path, storage_options)

    periodic = PeriodicCheckpoint(tmp_path, every_n_train_steps=1, keep=2, on_epoch_end=False)
    trainer = bare_trainer(periodic, plugins=[Listing()], max_steps=6)
    trainer.fit(Classifier(hidden_dim=8), DigitsDataModule(batch_size=32))
    # when step N is written, the two before it are still there: nothing is deleted before its successor
    assert seen[3] == ["step-00000002.ckpt", "step-00000003.ckpt"]
    assert sorted(p.name for p in tmp_path.glob("step-*.ckpt")) == [
        "step-00000005.ckpt",
        "step-00000006.ckpt",
    ]


def test_host_snapshot_is_a_copy_that_shares_nothing_and_reuses_its_buffers() -> None:
    weight = torch.arange(6.0)
    checkpoint = {"state_dict": {"a": weight, "tied": weight.detach()}, "meta": {"steps": [1, 2]}}
    snapshots = HostSnapshot()
    copy, events = snapshots.take(checkpoint)
    assert events == []  # nothing on a GPU to wait for
    assert copy["state_dict"]["a"] is copy["state_dict"]["tied"]  # one copy of a tensor seen twice
    assert copy["meta"] == checkpoint["meta"] and copy["meta"]["steps"] is not checkpoint["meta"]["steps"]
    weight.add_(1)  # training goes on
    assert torch.equal(copy["state_dict"]["a"], torch.arange(6.0))
    again, _ = snapshots.take(checkpoint)
    assert again["state_dict"]["a"].data_ptr() == copy["state_dict"]["a"].data_ptr()  # buffer reused
    assert torch.equal(again["state_dict"]["a"], weight)


class FailingIO(AtomicCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        raise OSError("No space left on device")


def test_a_failed_background_write_is_raised_by_the_next_wait(tmp_path: Path, caplog) -> None:
    writer = BackgroundCheckpointIO(FailingIO())
    with writer.in_background():
        writer.save_checkpoint({"x": torch.ones(2)}, tmp_path / "a.ckpt")  # returns: the write is queued
    with pytest.raises(OSError, match="No space left"):
        writer.wait()

    with writer.in_background():
        writer.save_checkpoint({"x": torch.ones(2)}, tmp_path / "b.ckpt")
    with caplog.at_level(logging.ERROR), pytest.raises(KeyError, match="training failed"):
        try:
            raise KeyError("training failed")
        except KeyError:
            writer.teardown()  # Lightning tears down while the training error is on its way: that one wins
            raise
    assert "background checkpoint write failed" in caplog.text


def test_only_litforges_own_checkpoint_io_writes_in_the_background() -> None:
    trainer = L.Trainer(logger=False, plugins=[TorchCheckpointIO()])
    assert install_background_writer(trainer) is None
    trainer = L.Trainer(logger=False, plugins=[AtomicCheckpointIO()])
    writer = install_background_writer(trainer)
    assert isinstance(writer, BackgroundCheckpointIO) and trainer.strategy.checkpoint_io is writer
    assert install_background_writer(trainer) is writer  # once
