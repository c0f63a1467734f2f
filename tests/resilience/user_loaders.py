"""A user's own module and data the way Lightning users write them, with plain ``DataLoader``s (copied into
the working directory by the tests and named by class path: ``--data user_loaders.ShuffledData``)."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

FEATURES, CLASSES = 8, 3


def _tensors(n: int = 72) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, FEATURES, generator=generator)
    y = (x @ torch.randn(FEATURES, CLASSES, generator=generator)).argmax(1)
    return x, y


class ShuffledData(L.LightningDataModule):
    """``DataLoader(dataset, shuffle=True)`` without a generator: the order comes from torch's global RNG."""

    def __init__(self, batch_size: int = 8) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.x, self.y = _tensors()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x[:16], self.y[:16]), batch_size=self.batch_size)


class Records(Dataset):
    """Samples as dicts, as a tokenised text dataset gives them."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"features": self.x[index], "label": self.y[index]}


def collate_records(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {
        "features": torch.stack([s["features"] for s in samples]),
        "label": torch.stack([s["label"] for s in samples]),
    }


class DictBatchData(ShuffledData):
    """Dict batches from a custom ``collate_fn``, shuffled with the user's own seeded generator."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            Records(self.x, self.y),
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=collate_records,
            generator=torch.Generator().manual_seed(5),
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            Records(self.x[:16], self.y[:16]), batch_size=self.batch_size, collate_fn=collate_records
        )


class UserNet(L.LightningModule):
    """A small classifier with dropout (so the global RNG matters) that takes tuple or dict batches."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Dropout(0.3), nn.Linear(hidden, CLASSES)
        )

    def _loss(self, batch) -> torch.Tensor:
        x, y = (batch["features"], batch["label"]) if isinstance(batch, dict) else batch
        return F.cross_entropy(self.net(x), y)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class Stream(torch.utils.data.IterableDataset):
    """A stream without ``state_dict``: its position cannot be saved."""

    def __iter__(self):
        x, y = _tensors()
        return iter(zip(x, y, strict=True))


class StreamData(ShuffledData):
    def train_dataloader(self) -> DataLoader:
        return DataLoader(Stream(), batch_size=self.batch_size)
