"""The fast data path: the same batches as the standard loaders, and exact mid-epoch resume."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset
from torchdata.stateful_dataloader import StatefulDataLoader

from litforge.data import SyntheticDataModule
from litforge.data.seeded_sampler import SeededRandomSampler
from litforge.data.tensor_loader import TensorBatchLoader

EPOCHS = 3


def _epochs(loader, epochs: int = EPOCHS) -> list[list[list[torch.Tensor]]]:
    return [list(loader) for _ in range(epochs)]


def _assert_same(actual, expected) -> None:
    assert len(actual) == len(expected)
    for epoch_a, epoch_e in zip(actual, expected, strict=True):
        assert len(epoch_a) == len(epoch_e)
        for batch_a, batch_e in zip(epoch_a, epoch_e, strict=True):
            assert isinstance(batch_a, list) and len(batch_a) == len(batch_e)
            for a, e in zip(batch_a, batch_e, strict=True):
                assert a.dtype == e.dtype and torch.equal(a, e)


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 3), torch.arange(n)


@pytest.mark.parametrize(
    ("loader_class", "rng_order"), [(StatefulDataLoader, "torchdata"), (DataLoader, "torch")]
)
@pytest.mark.parametrize("n, batch_size", [(103, 10), (100, 10), (7, 16)])
def test_shuffled_batches_equal_the_reference_loader(
    loader_class, rng_order: str, n: int, batch_size: int
) -> None:
    x, y = _data(n)
    reference = loader_class(
        TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(5)
    )
    expected = _epochs(reference)
    fast = TensorBatchLoader(
        x,
        y,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(5),
        rng_order=rng_order,
    )
    _assert_same(_epochs(fast), expected)
    assert len(fast) == len(expected[0])


def test_unshuffled_batches_equal_dataloader() -> None:
    x, y = _data(45)
    _assert_same(
        _epochs(TensorBatchLoader(x, y, batch_size=8)), _epochs(DataLoader(TensorDataset(x, y), batch_size=8))
    )


@pytest.mark.parametrize("stop_at", [0, 4, 11])  # epoch start, mid-epoch, end of epoch (11 batches)
def test_state_dict_resumes_where_it_stopped(stop_at: int) -> None:
    x, y = _data(103)

    def loader() -> TensorBatchLoader:
        return TensorBatchLoader(
            x, y, batch_size=10, shuffle=True, generator=torch.Generator().manual_seed(9)
        )

    expected = [[b[1].tolist() for b in epoch] for epoch in _epochs(loader())]

    first = loader()
    iterator = iter(first)
    consumed = [next(iterator)[1].tolist() for _ in range(stop_at)]
    state = first.state_dict()
    assert state["yielded"] == stop_at

    resumed = loader()  # a fresh process would build the loader from the same seed, then load
    resumed.load_state_dict(state)
    rest = [[b[1].tolist() for b in epoch] for epoch in _epochs(resumed, 2)]
    assert consumed == expected[0][:stop_at]
    if stop_at < len(expected[0]):  # mid-epoch: the rest of this epoch, then the next one
        assert rest == [expected[0][stop_at:], expected[1]]
    else:  # the epoch was finished: the next two
        assert rest == expected[1:3]


def test_datamodule_chooses_fast_path_and_standard_path() -> None:
    """Both paths yield the batches of ``DataLoader(TensorDataset, shuffle=True, generator=seed)``."""
    kwargs = {"num_samples": 200, "num_features": 4}
    assert isinstance(SyntheticDataModule(**kwargs).train_dataloader(), TensorBatchLoader)
    assert isinstance(SyntheticDataModule(**kwargs, fast_path=False).train_dataloader(), StatefulDataLoader)
    workers = SyntheticDataModule(**kwargs, num_workers=1).train_dataloader()
    assert isinstance(workers, StatefulDataLoader) and workers.num_workers == 1
    fast, standard = (SyntheticDataModule(**kwargs, fast_path=f) for f in (True, False))
    reference = DataLoader(
        TensorDataset(fast.train_x, fast.train_y),
        batch_size=fast.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(fast.seed),
    )
    _assert_same(_epochs(fast.train_dataloader()), _epochs(reference))
    for split in ("train", "val", "test"):
        _assert_same(
            _epochs(getattr(fast, f"{split}_dataloader")(), 2),
            _epochs(getattr(standard, f"{split}_dataloader")(), 2),
        )


# -- through a Lightning Trainer: checkpoint mid-epoch, restore in a new Trainer -----------------------
class _Recorder(L.LightningModule):
    """Records the labels of every training batch it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 4)
        self.seen: list[list[int]] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.append(y.tolist())
        return torch.nn.functional.cross_entropy(self.layer(x), y % 4)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(tmp_path: Path, fast_path: bool, callbacks=(), ckpt_path: str | None = None) -> list[list[int]]:
    data = SyntheticDataModule(num_samples=200, num_features=4, batch_size=16, fast_path=fast_path)
    model = _Recorder()
    trainer = L.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=bool(callbacks),
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return model.seen


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "standard"])
@pytest.mark.parametrize("step", [13, 9], ids=["mid-epoch", "epoch-end"])  # 9 batches per epoch
def test_trainer_resumes_with_the_same_batches(tmp_path: Path, fast_path: bool, step: int) -> None:
    uninterrupted = _fit(tmp_path / "a", fast_path)
    assert len(uninterrupted) == EPOCHS * 9  # 140 training samples / 16 -> 9 batches per epoch
    saver = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", filename="{step}", every_n_train_steps=step, save_top_k=-1
    )
    _fit(tmp_path / "b", fast_path, callbacks=[saver])
    resumed = _fit(tmp_path / "c", fast_path, ckpt_path=str(tmp_path / "ckpt" / f"step={step}.ckpt"))
    assert resumed == uninterrupted[step:]


def test_fast_and_standard_paths_train_on_the_same_batches(tmp_path: Path) -> None:
    assert _fit(tmp_path / "fast", True) == _fit(tmp_path / "standard", False)


def test_prefetch_to_device_counts_only_handed_out_batches() -> None:
    """With a device, batch i + 1 is copied ahead of time, but the resume position counts batch i."""
    x, y = _data(50)
    loader = TensorBatchLoader(
        x, y, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(1), device="meta"
    )
    iterator = iter(loader)
    first = [next(iterator) for _ in range(3)]
    assert all(t.device.type == "meta" for batch in first for t in batch)
    assert [batch[0].shape[0] for batch in first] == [8, 8, 8]
    assert loader.state_dict()["yielded"] == 3
    assert sum(1 for _ in iterator) == len(loader) - 3


@pytest.mark.parametrize("stop_at", [0, 4, 11])  # before the first batch, mid-epoch, after the last batch
def test_standard_path_sampler_resumes_where_it_stopped(stop_at: int) -> None:
    x, y = _data(103)

    def loader() -> StatefulDataLoader:
        generator = torch.Generator().manual_seed(9)
        return StatefulDataLoader(
            TensorDataset(x, y),
            batch_size=10,
            sampler=SeededRandomSampler(103, generator),
            generator=generator,
        )

    expected = [[b[1].tolist() for b in epoch] for epoch in _epochs(loader())]
    first = loader()
    iterator = iter(first)
    for _ in range(stop_at):
        next(iterator)
    resumed = loader()
    resumed.load_state_dict(first.state_dict())
    rest = [[b[1].tolist() for b in epoch] for epoch in _epochs(resumed, 2)]
    if stop_at < 11:
        assert rest == [expected[0][stop_at:], expected[1]]
    else:
        assert rest == expected[1:3]


def test_several_devices_use_a_plain_shuffling_loader_for_lightning_to_shard() -> None:
    from types import SimpleNamespace

    data = SyntheticDataModule(num_samples=200, num_features=4)
    data.trainer = SimpleNamespace(world_size=2)
    loader = data.train_dataloader()
    assert isinstance(loader, StatefulDataLoader)
    # shuffle=True with the default random sampler: Lightning swaps in a shuffling DistributedSampler
    assert type(loader.sampler).__name__ == "RandomSampler" and not isinstance(
        loader.sampler, SeededRandomSampler
    )
