"""What a module's on_save_checkpoint may store: plain data loads back weights-only; another class stops the
fit at its first save, named, before a file nothing could read is written."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import pathlib
from collections import OrderedDict, defaultdict

import numpy as np
import pytest
import torch

from litforge.errors import UsageError
from litforge.resilience import AtomicCheckpointIO
from litforge.resilience.checkpoint_file import read_checkpoint
from litforge.resilience.checkpoint_types import refuse_unloadable


@dataclasses.dataclass
class Meta:
    note: str = "x"


def _checkpoint(**extra: object) -> dict:
    return {"state_dict": {"w": torch.ones(2)}, "loops": {}, "global_step": 1, "epoch": 0, **extra}


def test_paths_numpy_namespaces_and_datetimes_save_and_load_back_weights_only(tmp_path) -> None:
    meta = {
        "backbone_file": pathlib.Path("weights/backbone.pt"),
        "class_weights": np.ones(10, dtype=np.float32),
        "ids": np.arange(3),
        "threshold": np.float64(0.5),
        "count": np.int64(3),
        "args": argparse.Namespace(lr=0.1),
        "when": datetime.datetime(2026, 12, 7, 20, 0),
        "ordered": OrderedDict(a=torch.zeros(1)),
    }
    AtomicCheckpointIO().save_checkpoint(_checkpoint(meta=meta), tmp_path / "a.ckpt")
    loaded = read_checkpoint(tmp_path / "a.ckpt")["meta"]
    assert loaded["backbone_file"] == pathlib.Path("weights/backbone.pt")
    assert loaded["class_weights"].dtype == np.float32 and loaded["class_weights"].sum() == 10
    assert loaded["threshold"] == 0.5 and loaded["count"] == 3 and loaded["args"].lr == 0.1
    assert loaded["when"].year == 2026 and torch.equal(loaded["ordered"]["a"], torch.zeros(1))


def test_another_class_is_refused_at_the_save_naming_where_it_sits_and_nothing_is_written(tmp_path) -> None:
    target = tmp_path / "b.ckpt"
    with pytest.raises(
        UsageError, match=r"holds meta\.info \(test_checkpoint_types\.Meta\): objects litforge"
    ):
        AtomicCheckpointIO().save_checkpoint(_checkpoint(meta={"info": Meta()}), target)
    assert not target.exists() and not list(tmp_path.iterdir())
    with pytest.raises(UsageError, match=r"hyper_parameters\.net \(torch\.nn\.modules\.linear\.Linear\)"):
        refuse_unloadable(_checkpoint(hyper_parameters={"net": torch.nn.Linear(2, 2)}))
    with pytest.raises(UsageError, match=r"holds counts \(collections\.defaultdict\), kind \(.*Meta\):"):
        refuse_unloadable(_checkpoint(counts=defaultdict(int, a=1), kind=Meta))  # torch's list has neither


def test_a_function_a_cycle_and_a_big_array_are_scanned_without_their_bytes() -> None:
    import torch.nn.functional as F

    looped: dict = {"a": 1}
    looped["self"] = looped  # torch.save takes it; the scan must too
    refuse_unloadable(_checkpoint(meta=looped, table=np.zeros((2000, 2000))))
    with pytest.raises(UsageError, match=r"holds hyper_parameters\.activation \(torch\._C\._nn\.gelu\)"):
        refuse_unloadable(_checkpoint(hyper_parameters={"activation": F.gelu}))


def test_a_crash_is_reported_as_itself_when_its_exception_checkpoint_is_refused(tmp_path) -> None:
    """A module storing an object in on_save_checkpoint whose training_step then crashed: the refusal of
    on_exception.ckpt replaced the user's exception (exit 2, "store it as plain data")."""
    import lightning as L
    from resilience_helpers import bare_trainer

    from litforge.resilience import ExceptionCheckpoint

    class Crashes(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            raise ValueError("the real bug in training_step")

        def on_save_checkpoint(self, checkpoint):
            checkpoint["meta"] = Meta()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(4, 2)), batch_size=2)
    trainer = bare_trainer(ExceptionCheckpoint(tmp_path), max_steps=1)
    with pytest.raises(ValueError, match="the real bug in training_step"):
        trainer.fit(Crashes(), train_dataloaders=loader)
    assert not (tmp_path / "on_exception.ckpt").exists()
