"""An autoencoder with two optimizers and two schedulers stepped at different intervals (manual optimization).

litforge fit --config configs/autoencoder.yaml
# -> LearningRateMonitor curves lr-encoder (per epoch) and lr-decoder (per step) in metrics.csv/TensorBoard,
#    runs/autoencoder/version_N/reconstructions/epoch_NNN.png
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from litforge.models.classifier import Standardize
from litforge.models.images import epoch_image_path, image_side, save_image_grid
from litforge.models.manual_schedules import is_last_training_batch, step_lr_schedulers
from litforge.models.speed import compile_in_place


class AutoEncoder(L.LightningModule):
    """MLP autoencoder on raw feature vectors (normalisation inside the model), trained with an encoder
    optimizer (Adam + ``StepLR`` per epoch) and a decoder optimizer (Adam + ``CosineAnnealingLR`` per step).

    Lightning 2.x only runs several optimizers under manual optimization, where it no longer steps the
    schedulers; this module steps each one at the ``interval`` its config names (``step_lr_schedulers``),
    so the learning rates follow the schedulers' formulas and checkpoints carry the scheduler state.

    Args:
        num_features: input features; linked from the datamodule.
        latent_dim: bottleneck width.
        hidden_dim: hidden layer width of encoder and decoder.
        encoder_lr: encoder Adam learning rate.
        decoder_lr: decoder Adam learning rate.
        step_size: ``StepLR`` period in epochs (encoder).
        gamma: ``StepLR`` decay factor (encoder).
        cosine_t_max: ``CosineAnnealingLR`` period in training steps (batches) for the decoder.
        eta_min: the decoder's minimum learning rate.
        num_preview: validation images shown (with their reconstructions) in the per-epoch PNG.
        compile: ``torch.compile`` encoder and decoder in ``configure_model``.
        input_mean: per-feature mean applied inside the model (linked from the datamodule).
        input_std: per-feature std applied inside the model (linked from the datamodule).
    """

    def __init__(
        self,
        num_features: int = 64,
        latent_dim: int = 16,
        hidden_dim: int = 128,
        encoder_lr: float = 1e-3,
        decoder_lr: float = 1e-4,
        step_size: int = 10,
        gamma: float = 0.1,
        cosine_t_max: int = 100,
        eta_min: float = 0.0,
        num_preview: int = 16,
        compile: bool = False,
        input_mean: list[float] | None = None,
        input_std: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["input_mean", "input_std"])
        self.automatic_optimization = False
        self.standardize = Standardize(num_features, input_mean, input_std)
        self.encoder = nn.Sequential(
            nn.Linear(num_features, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_features)
        )
        self.example_input_array = torch.zeros(2, num_features)
        self._preview: torch.Tensor | None = None

    def configure_model(self) -> None:
        if self.hparams.compile:
            compile_in_place([self.encoder, self.decoder])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features (B, F) -> reconstruction (B, F) in the same raw units."""
        z = self.encoder(self.standardize(x))  # (B, latent_dim)
        return self.decoder(z) * self.standardize.std + self.standardize.mean

    def _loss(self, x: torch.Tensor) -> torch.Tensor:
        target = self.standardize(x)
        return F.mse_loss(self.decoder(self.encoder(target)), target)  # in standardized units

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        enc_opt, dec_opt = self.optimizers()
        loss = self._loss(batch[0])
        enc_opt.zero_grad()
        dec_opt.zero_grad()
        self.manual_backward(loss)
        enc_opt.step()
        dec_opt.step()
        step_lr_schedulers(self, "step", batch_idx)  # the decoder's CosineAnnealingLR
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if is_last_training_batch(self.trainer, batch_idx):  # before validation saves a checkpoint
            step_lr_schedulers(self, "epoch", self.current_epoch)  # the encoder's StepLR

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x = batch[0]
        loss = self._loss(x)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True)
        if batch_idx == 0:
            self._preview = x[: self.hparams.num_preview]
        return loss

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch[0])
        self.log("test_loss", loss, on_epoch=True)
        return loss

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        error = (self(x) - x).pow(2).mean(dim=1)  # (B,) raw-unit reconstruction MSE: an anomaly score
        return {"prediction": error}

    def on_validation_epoch_end(self) -> None:
        path = None if self.trainer.sanity_checking else epoch_image_path(self.trainer, "reconstructions")
        if path is None or self._preview is None:
            return
        side = image_side(self.hparams.num_features)
        originals = self._preview
        with torch.no_grad():
            reconstructions = self(originals)
        scale = originals.max().clamp(min=1e-6)  # raw pixels -> [0, 1]
        rows = torch.cat([originals, reconstructions]) / scale  # originals on top, reconstructions below
        save_image_grid(rows.view(-1, side, side), path, columns=len(originals))

    def configure_optimizers(self) -> tuple[dict[str, Any], dict[str, Any]]:
        hp = self.hparams
        enc_opt = torch.optim.Adam(self.encoder.parameters(), lr=hp.encoder_lr)
        dec_opt = torch.optim.Adam(self.decoder.parameters(), lr=hp.decoder_lr)
        enc_sched = torch.optim.lr_scheduler.StepLR(enc_opt, step_size=hp.step_size, gamma=hp.gamma)
        dec_sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            dec_opt, T_max=hp.cosine_t_max, eta_min=hp.eta_min
        )
        return (
            {
                "optimizer": enc_opt,
                "lr_scheduler": {"scheduler": enc_sched, "interval": "epoch", "name": "lr-encoder"},
            },
            {
                "optimizer": dec_opt,
                "lr_scheduler": {"scheduler": dec_sched, "interval": "step", "name": "lr-decoder"},
            },
        )
