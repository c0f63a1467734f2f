"""The default model: an MLP (or a small CNN for image-shaped input) classifier.

litforge fit                                   # MLP on the bundled digits
litforge fit --model.arch cnn --model.lr 3e-3  # small CNN on the same 8x8 images
"""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy


class Standardize(nn.Module):
    """``(x - mean) / std`` with the statistics as buffers, so they travel in checkpoints and exports."""

    def __init__(self, num_features: int, mean: list[float] | None = None, std: list[float] | None = None):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean) if mean is not None else torch.zeros(num_features))
        self.register_buffer("std", torch.tensor(std) if std is not None else torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(L.LightningModule):
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
        # The statistics live in buffers (state_dict), so hparams stay small and load_from_checkpoint works.
        self.save_hyperparameters(ignore=["input_mean", "input_std"])
        self.standardize = Standardize(num_features, input_mean, input_std)
        self.net = (
            _cnn(num_features, num_classes, hidden_dim, dropout)
            if arch == "cnn"
            else _mlp(num_features, num_classes, hidden_dim, dropout, hidden_layers)
        )
        self.example_input_array = torch.zeros(2, num_features)
        # Training metrics are running sums on the device (TrainingStats), logged once per epoch: the
        # per-step self.log and torchmetrics update they replace cost as much as the MLP's step on a CPU.
        self.train_stats = TrainingStats(num_classes)
        self.val_acc = MulticlassAccuracy(num_classes)
        self.test_acc = MulticlassAccuracy(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features (B, F) -> logits (B, C)."""
        return self.net(self.standardize(x))

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        """Validation and test: loss and macro accuracy, accumulated on the device, logged per epoch."""
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        accuracy = getattr(self, f"{stage}_acc")
        accuracy.update(logits, y)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log(f"{stage}_acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.train_stats.update(loss.detach(), logits.detach(), y)
        # The step loss only on the steps the loggers write (every log_every_n_steps): no host sync and
        # none of self.log's bookkeeping on the others.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train_loss_step", loss, on_step=True, on_epoch=False)
        if self.trainer.is_last_batch:  # before the epoch-end hooks, so the progress bar shows them
            self._log_training_epoch()
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_training_epoch()  # an epoch cut short (max_steps, a stop) still gets its figures

    def _log_training_epoch(self) -> None:
        if self.train_stats.count > 0:
            loss, accuracy = self.train_stats.compute()
            self.log("train_loss_epoch", loss, on_step=False, on_epoch=True, sync_dist=True)
            self.log("train_acc", accuracy, on_step=False, on_epoch=True, sync_dist=True)
            self.train_stats.reset()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["train_stats"] = self.train_stats.snapshot()  # a mid-epoch resume keeps the epoch's sums

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "train_stats" in checkpoint:
            self.train_stats.restore(checkpoint["train_stats"])

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

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


class TrainingStats(nn.Module):
    """Running training loss (mean over samples) and macro accuracy, kept on the model's device with a
    few tensor ops per step and no host sync; read once per epoch."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("loss_sum", torch.zeros(()), persistent=False)
        self.register_buffer("hits", torch.zeros(num_classes), persistent=False)
        self.register_buffer("support", torch.zeros(num_classes), persistent=False)
        self.count = 0

    @torch.no_grad()
    def update(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        num_classes = self.hits.numel()
        correct = (logits.argmax(dim=-1) == target).to(self.hits.dtype)
        self.hits += torch.bincount(target, weights=correct, minlength=num_classes)
        self.support += torch.bincount(target, minlength=num_classes)
        self.loss_sum += loss * target.numel()
        self.count += target.numel()

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, macro accuracy over the classes seen) since the last ``reset``."""
        seen = self.support > 0
        return self.loss_sum / self.count, (self.hits[seen] / self.support[seen]).mean()

    def snapshot(self) -> dict[str, Any]:
        return {
            "loss_sum": self.loss_sum.clone(),
            "hits": self.hits.clone(),
            "support": self.support.clone(),
            "count": self.count,
        }

    def restore(self, state: dict[str, Any]) -> None:
        for name in ("loss_sum", "hits", "support"):
            getattr(self, name).copy_(state[name])
        self.count = int(state["count"])

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.hits.zero_()
        self.support.zero_()
        self.count = 0


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
