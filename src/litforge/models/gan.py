"""A GAN on the 8x8 digits, trained with manual optimization (two Adam optimizers, ``manual_backward``).

litforge fit --config configs/gan.yaml
# -> runs/gan/version_N/samples/epoch_NNN.png, checkpoints/best.ckpt (lowest val_mmd), metrics.csv
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from litforge.models.images import epoch_image_path, image_side, save_image_grid
from litforge.models.speed import compile_in_place


class GAN(L.LightningModule):
    """Unconditional GAN over flat images with pixel values in ``[0, pixel_max]`` (digits: 0-16).

    Each training batch steps the discriminator once, then the generator once (non-saturating loss),
    and logs ``d_loss``/``g_loss``. Validation logs ``val_mmd``, a multi-scale RBF-kernel maximum mean
    discrepancy between real validation images and as many generated ones (lower is better); the
    default checkpoint keeps the lowest. Each epoch a grid of samples from fixed noise is written to
    ``<run folder>/samples/epoch_NNN.png``.

    Args:
        num_features: pixels per image (a square, e.g. 64 for 8x8); linked from the datamodule.
        latent_dim: size of the noise vector.
        hidden_dim: width of both networks.
        lr: Adam learning rate of both optimizers.
        beta1: Adam's first beta (0.5 is the usual GAN choice).
        pixel_max: the largest raw pixel value (16 for the digits).
        num_preview: images in the per-epoch sample grid.
        compile: ``torch.compile`` both networks in ``configure_model``.
    """

    checkpoint_monitor = "val_mmd"

    def __init__(
        self,
        num_features: int = 64,
        latent_dim: int = 32,
        hidden_dim: int = 256,
        lr: float = 2e-4,
        beta1: float = 0.5,
        pixel_max: float = 16.0,
        num_preview: int = 64,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        image_side(num_features)  # fail early on non-square inputs
        self.generator = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, num_features),
            nn.Tanh(),  # (B, F) in [-1, 1]
        )
        self.discriminator = Discriminator(num_features, hidden_dim)
        self.register_buffer("preview_z", torch.randn(num_preview, latent_dim, generator=_seeded(0)))
        self.example_input_array = torch.zeros(2, latent_dim)

    def configure_model(self) -> None:
        if self.hparams.compile:
            compile_in_place([self.generator, self.discriminator])

    # -- pixels <-> [-1, 1] --------------------------------------------------------------------------
    def to_unit(self, raw: torch.Tensor) -> torch.Tensor:
        return raw / self.hparams.pixel_max * 2 - 1

    def to_raw(self, unit: torch.Tensor) -> torch.Tensor:
        return (unit + 1) / 2 * self.hparams.pixel_max

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Noise (B, latent_dim) -> raw images (B, F) in ``[0, pixel_max]``, like the training data."""
        return self.to_raw(self.generator(z))

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` raw generated images (n, F); a ``seed`` makes them reproducible."""
        generator = _seeded(seed) if seed is not None else None
        z = torch.randn(n, self.hparams.latent_dim, generator=generator).to(self.device)
        return self(z)

    # -- training ------------------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        g_opt, d_opt = self.optimizers()
        real = self.to_unit(batch[0])  # (B, F)
        z = torch.randn(real.shape[0], self.hparams.latent_dim, device=self.device)
        fake = self.generator(z)  # (B, F)

        # Discriminator: real -> 1, fake -> 0 (fake detached: no generator gradients here).
        with self.toggled_optimizer(d_opt):
            d_loss = (_bce(self.discriminator(real), 1.0) + _bce(self.discriminator(fake.detach()), 0.0)) / 2
            d_opt.zero_grad()
            self.manual_backward(d_loss)
            d_opt.step()

        # Generator: make the (just updated) discriminator say "real" (non-saturating loss).
        with self.toggled_optimizer(g_opt):
            g_loss = _bce(self.discriminator(fake), 1.0)
            g_opt.zero_grad()
            self.manual_backward(g_loss)
            g_opt.step()

        self.log_dict({"g_loss": g_loss, "d_loss": d_loss}, on_step=True, on_epoch=True, prog_bar=True)

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        real = self.to_unit(batch[0])
        fake = self.generator(self._noise(real.shape[0], seed=batch_idx))
        mmd = rbf_mmd(real, fake)
        self.log("val_mmd", mmd, on_epoch=True, prog_bar=True, batch_size=real.shape[0])
        return mmd

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        """The discriminator's probability that each raw image (B, F) is a real one."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return {"prediction": torch.sigmoid(self.discriminator(self.to_unit(x))).squeeze(1)}  # (B,)

    def on_train_epoch_end(self) -> None:
        path = epoch_image_path(self.trainer, "samples")
        if path is not None:
            side = image_side(self.hparams.num_features)
            with torch.no_grad():
                images = self.generator(self.preview_z)  # (N, F) in [-1, 1]
            save_image_grid((images.view(-1, side, side) + 1) / 2, path)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        betas = (self.hparams.beta1, 0.999)
        g_opt = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)
        d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)
        return [g_opt, d_opt]

    def _noise(self, n: int, seed: int) -> torch.Tensor:
        return torch.randn(n, self.hparams.latent_dim, generator=_seeded(seed)).to(self.device)


class Discriminator(nn.Module):
    """MLP critic with a minibatch-standard-deviation feature: seeing how varied the batch is lets it
    reject a generator that collapsed onto a few outputs (mode collapse)."""

    def __init__(self, num_features: int, hidden_dim: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Linear(num_features, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.3),
            nn.Linear(hidden_dim, hidden_dim // 2),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(hidden_dim // 2 + 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, F) in [-1, 1] -> logits "real" (B, 1)."""
        h = self.features(x)  # (B, H)
        spread = h.std(dim=0, unbiased=False).mean().expand(h.shape[0], 1)  # (B, 1), same for the whole batch
        return self.head(torch.cat([h, spread], dim=1))


def rbf_mmd(
    x: torch.Tensor, y: torch.Tensor, scales: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
) -> torch.Tensor:
    """Biased squared MMD between samples ``x`` (N, F) and ``y`` (M, F) with a sum of RBF kernels whose
    bandwidths are ``scales`` times sqrt(F)."""
    x, y = x.float(), y.float()
    both = torch.cat([x, y])
    sq = torch.cdist(both, both).pow(2)  # (N+M, N+M)
    kernel = sum(torch.exp(-sq / (2 * (s**2) * x.shape[1])) for s in scales)
    n = x.shape[0]
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
