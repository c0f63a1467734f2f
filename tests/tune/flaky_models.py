"""A classifier that fails on purpose, for ``litforge tune`` tests (class_path ``flaky_models.FlakyClassifier``)."""

from __future__ import annotations

from typing import Literal

import torch
from torch.utils.data import DataLoader, TensorDataset, default_collate

from litforge.data import DigitsDataModule
from litforge.models import Classifier


class FlakyClassifier(Classifier):
    """``mode: raise`` raises in the first training step; ``mode: nan`` trains on a NaN loss."""

    def __init__(
        self,
        mode: Literal["ok", "raise", "nan"] = "ok",
        num_features: int = 64,
        num_classes: int = 10,
        hidden_dim: int = 32,
        lr: float = 3e-3,
        input_mean: list[float] | None = None,
        input_std: list[float] | None = None,
    ) -> None:
        super().__init__(
            num_features=num_features,
            num_classes=num_classes,
            hidden_dim=hidden_dim,
            lr=lr,
            input_mean=input_mean,
            input_std=input_std,
        )
        self.mode = mode

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.mode == "raise":
            raise RuntimeError("boom: this trial raises on purpose")
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.mode == "nan" else loss


class LambdaCollateDigits(DigitsDataModule):
    """The digits through a DataLoader with a loader worker and a ``lambda`` collate_fn, as users write them:
    it only works where loader workers are forked (a spawned or forkserver worker cannot be sent a lambda)."""

    def train_dataloader(self) -> DataLoader:
        dataset = TensorDataset(self.train_x, self.train_y)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=1,
            collate_fn=lambda samples: default_collate(samples),
        )
