"""A zoo of healthy user-style modules, written the way users write them: every standard check must PASS
(or SKIP with a reason) on each. ``tests/test_check_zoo.py`` runs them through ``litforge.testing`` and,
copied into a working directory, through ``litforge check --model mymodels.LitModel ...``.

Each is correct Lightning code: its own defaults, shuffled plain ``DataLoader``s, ``random_split`` on the
global RNG, ``(B,)`` regression outputs, dict batches, manual optimization, no validation loop, no
``val_loss``, ``torch.compile`` in ``configure_model``.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset, random_split

FEATURES, CLASSES, SAMPLES = 20, 4, 128


def _blobs(samples: int = SAMPLES) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable synthetic features: class = argmax of a fixed projection."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(samples, FEATURES, generator=generator)
    return x, (x @ torch.randn(FEATURES, CLASSES, generator=generator)).argmax(1)


class MyDataModule(L.LightningDataModule):
    """The seed's datamodule shape: ``random_split`` in ``setup`` and a shuffled plain ``DataLoader``."""

    def __init__(self, batch_size: int = 32, num_workers: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        self.train_set, self.val_set = random_split(TensorDataset(*_blobs()), [96, 32])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size)


class TrainOnlyClassifier(L.LightningModule):
    """The seed's classifier without a validation loop: its own defaults (hidden_dim=256, lr=1e-3), dropout."""

    def __init__(self, hidden_dim: int = 256, lr: float = 1e-3, dropout: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(
            nn.Linear(FEATURES, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, CLASSES)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, C)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class LitModel(TrainOnlyClassifier):
    """The seed's LitModel: the classifier above, validated on ``val_loss``."""

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))


class CompiledLitModel(LitModel):
    """The seed's "Compile with torch.compile" pattern (``backend="eager"`` keeps the test fast)."""

    def configure_model(self) -> None:
        self.model = torch.compile(self.model, backend="eager")


class LayersInConfigureModel(LitModel):
    """Lightning's documented pattern for large models: layers built in ``configure_model``, idempotently."""

    def __init__(self, hidden_dim: int = 256, lr: float = 1e-3, dropout: float = 0.1) -> None:
        super().__init__(hidden_dim, lr, dropout)
        self.model = None

    def configure_model(self) -> None:
        if self.model is not None:
            return
        hidden = self.hparams.hidden_dim
        self.model = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, CLASSES))


class TrainOnlyData(L.LightningDataModule):
    def __init__(self, batch_size: int = 32) -> None:
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(*_blobs()), batch_size=self.batch_size, shuffle=True)


class AccuracyOnlyModel(LitModel):
    """Validates, but logs only ``val_acc`` (no ``val_loss`` anywhere)."""

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())


class Regressor(L.LightningModule):
    """A regression head returning shape ``(B,)``, with an ``example_input_array`` for the model summary."""

    def __init__(self, in_features: int = FEATURES, width: int = 64, learning_rate: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(in_features, width), nn.Tanh(), nn.Linear(width, 1))
        self.example_input_array = torch.zeros(2, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # (B, F) -> (B,)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 100)}


class RegressionData(L.LightningDataModule):
    def __init__(self, batch_size: int = 16) -> None:
        super().__init__()
        self.batch_size = batch_size
        x, _ = _blobs()
        self.dataset = TensorDataset(x, torch.sin(x[:, :3].sum(1)))  # float targets (N,)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size)


class DictDataset(Dataset):
    def __init__(self) -> None:
        self.x, self.y = _blobs()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "y": self.y[index]}


class DictData(L.LightningDataModule):
    def __init__(self, batch_size: int = 16) -> None:
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(DictDataset(), batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(DictDataset(), batch_size=self.batch_size)


class DictBatchModel(L.LightningModule):
    """Batches are dicts ``{"x": (B, F), "y": (B,)}``; ``forward(x)`` takes the features."""

    def __init__(self, hidden: int = 64, lr: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(FEATURES, hidden), nn.GELU())
        self.head = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))  # (B, C)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["x"]), batch["y"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", F.cross_entropy(self(batch["x"]), batch["y"]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class GAN(L.LightningModule):
    """The seed's manual optimization: two optimizers, losses logged, nothing returned."""

    def __init__(self, latent_dim: int = 8, lr: float = 1e-4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(latent_dim, 32), nn.ReLU(), nn.Linear(32, FEATURES))
        self.discriminator = nn.Sequential(nn.Linear(FEATURES, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
        self.example_input_array = torch.zeros(2, latent_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)  # (B, latent) -> (B, F)

    def _adversarial(self, x: torch.Tensor, real: bool) -> torch.Tensor:
        logits = self.discriminator(x)
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)

    def training_step(self, batch, batch_idx):
        x, _ = batch
        g_opt, d_opt = self.optimizers()
        fake = self(torch.randn(x.shape[0], self.hparams.latent_dim, device=x.device))

        d_opt.zero_grad()
        d_loss = (self._adversarial(x, True) + self._adversarial(fake.detach(), False)) / 2
        self.manual_backward(d_loss)
        d_opt.step()

        g_opt.zero_grad()
        g_loss = self._adversarial(fake, True)
        self.manual_backward(g_loss)
        g_opt.step()

        self.log_dict({"g_loss": g_loss, "d_loss": d_loss})

    def configure_optimizers(self):
        g_opt = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr)
        d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr)
        return [g_opt, d_opt], []


# (model, data) pairs: every check passes or skips with a reason on each.
ZOO = {
    "seed_classifier": (LitModel, MyDataModule),
    "regression_1d": (Regressor, RegressionData),
    "dict_batch": (DictBatchModel, DictData),
    "manual_two_optimizers": (GAN, MyDataModule),
    "no_validation": (TrainOnlyClassifier, TrainOnlyData),
    "no_val_loss": (AccuracyOnlyModel, MyDataModule),
    "compiled_submodule": (CompiledLitModel, MyDataModule),
    "layers_in_configure_model": (LayersInConfigureModel, MyDataModule),
}
