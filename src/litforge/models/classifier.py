"""The default model: an MLP (or a small CNN for image-shaped input) classifier.

litforge fit                                   # MLP on the bundled digits
litforge fit --model.arch cnn --model.lr 3e-3  # small CNN on the same 8x8 images
"""

from __future__ import annotations

import math
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from litforge.models.epoch_stats import EpochStats, EpochStatsLogging


class Standardize(nn.Module):
    """``(x - mean) / std`` with the statistics as buffers, so they travel in checkpoints and exports."""

    def __init__(self, num_features: int, mean: list[float] | None = None, std: list[float] | None = None):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean) if mean is not None else torch.zeros(num_features))
        self.register_buffer("std", torch.tensor(std) if std is not None else torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(EpochStatsLogging, L.LightningModule):
    """Multiclass classifier on flat feature vectors that takes raw (un-normalised) inputs.

    Args:
        num_features: input features; linked from the datamodule by the CLI.
        num_classes: classes; linked from the datamodule by the CLI.
        hidden_dim: width of the hidden layers.
        hidden_layers: number of hidden layers of the MLP (``arch: mlp``).
        lr: Adam learning rate.
        dropout: dropout probability after each hidden layer.
        arch: ``mlp``, or ``cnn`` for square single-channel images (features = side * side).
        input_mean: per-feature mean applied inside the model (linked from the datamodule).
        input_std: per-feature std applied inside the model (linked from the datamodule).
        fused: Adam's fused kernel (one call for all parameters; not bit-identical to the per-parameter
            loop). ``None`` (default): fused wherever the parameters are on CPU or CUDA.
    """

    checkpoint_monitor = "val_loss"  # litforge's run folder keeps checkpoints/best.ckpt by this metric

    def __init__(
        self,
        num_features: int = 64,
        num_classes: int = 10,
        hidden_dim: int = 128,
        hidden_layers: int = 2,
        lr: float = 1e-3,
        dropout: float = 0.1,
        arch: Literal["mlp", "cnn"] = "mlp",
        input_mean: list[float] | None = None,
        input_std: list[float] | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__()
        _check_sizes(num_features=num_features, num_classes=num_classes, hidden_dim=hidden_dim)
        if hidden_layers < 1:
            raise ValueError(f"hidden_layers must be at least 1, got {hidden_layers}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if lr < 0:
            raise ValueError(f"lr must be 0 or more, got {lr}")
        # The statistics live in buffers (state_dict), so hparams stay small and load_from_checkpoint works.
        self.save_hyperparameters(ignore=["input_mean", "input_std"])
        self.standardize = Standardize(num_features, input_mean, input_std)
        self.net = (
            _cnn(num_features, num_classes, hidden_dim, dropout)
            if arch == "cnn"
            else _mlp(num_features, num_classes, hidden_dim, dropout, hidden_layers)
        )
        self.example_input_array = torch.zeros(2, num_features)
        # Loss and macro accuracy per stage as running sums on the device, logged once per epoch.
        self.train_stats, self.val_stats, self.test_stats = (EpochStats(num_classes) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features (B, F) -> logits (B, C)."""
        return self.net(self.standardize(x))

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.stats(stage).update(loss.detach(), logits.detach(), y)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        self.log_step_loss(loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def predict_step(
        self, batch: tuple[torch.Tensor, ...] | torch.Tensor, batch_idx: int
    ) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        with torch.inference_mode():
            probabilities = self(x).softmax(dim=-1)
        return {"prediction": probabilities.argmax(dim=-1), "probabilities": probabilities}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        supported = all(p.device.type in ("cpu", "cuda") for p in self.parameters())
        fused = self.hparams.get("fused")
        fused = supported if fused is None else fused and supported
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, fused=fused or None)


def _mlp(
    num_features: int, num_classes: int, hidden_dim: int, dropout: float, hidden_layers: int = 2
) -> nn.Sequential:
    if hidden_layers < 1:
        raise ValueError(f"hidden_layers must be >= 1, got {hidden_layers}")
    layers: list[nn.Module] = []
    width = num_features
    for _ in range(hidden_layers):
        layers += [nn.Linear(width, hidden_dim), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden_dim
    return nn.Sequential(*layers, nn.Linear(width, num_classes))


def _cnn(num_features: int, num_classes: int, hidden_dim: int, dropout: float) -> nn.Sequential:
    side = math.isqrt(num_features)
    if side * side != num_features:
        raise ValueError(
            f"arch='cnn' needs square single-channel images; {num_features} features is not a square"
        )
    channels = max(8, hidden_dim // 4)
    return nn.Sequential(
        nn.Unflatten(1, (1, side, side)),  # (B, F) -> (B, 1, H, W)
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),  # (B, C, 2, 2)
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(channels * 4, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, num_classes),
    )


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} must be a positive size, got {value}")
