"""A tiny correct classifier and data, and one deliberately broken variant per bug the checks catch.

Importable by class path (``--model broken_modules.UnusedLayer``) with ``tests/`` on PYTHONPATH.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

FEATURES, CLASSES = 8, 3


class TinyData(L.LightningDataModule):
    """64 learnable samples (label = argmax of a fixed projection), batches of 16."""

    num_features, num_classes = FEATURES, CLASSES
    label_offset = 0

    def __init__(self, batch_size: int = 16) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, FEATURES, generator=generator)
        self.y = (self.x @ torch.randn(FEATURES, CLASSES, generator=generator)).argmax(1) + self.label_offset
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x[:32], self.y[:32]), batch_size=self.batch_size)


class WrongLabelData(TinyData):
    """Labels 1..3 for 3 classes (an off-by-one from 1-based class ids)."""

    label_offset = 1


class IntegerTargetsData(TinyData):
    """Whole-number targets from -1 up, no classes declared: a regression's targets left as integers."""

    num_classes = None
    label_offset = -1


class OneSampleTailData(TinyData):
    """64 samples in batches of 63: each epoch ends on a batch of one sample."""

    def __init__(self, batch_size: int = 63) -> None:
        super().__init__(batch_size)


class Float64Data(TinyData):
    """Inputs left in float64, as ``torch.from_numpy`` keeps a numpy array's dtype."""

    def __init__(self, batch_size: int = 16) -> None:
        super().__init__(batch_size)
        self.x = self.x.double()


class TinyNet(L.LightningModule):
    """A correct two-layer classifier."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(hidden, CLASSES)
        self.example_input_array = torch.zeros(2, FEATURES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, H)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, C)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", self.loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class PretrainedBodyInEvalMode(TinyNet):
    """Like a backbone from ``from_pretrained`` (eval mode), fine-tuned without ``.train()``: dropout is off."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.body.eval()


class FrozenBodyInEvalMode(PretrainedBodyInEvalMode):
    """The same backbone frozen: eval mode is then deliberate."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.body.requires_grad_(False)


class NonScalarLoss(TinyNet):
    def loss(self, logits, y):
        return F.cross_entropy(logits, y, reduction="none")  # (B,): forgot to reduce


class LazyFirstLayer(TinyNet):
    """A correct classifier whose first layer learns its input width at the first call."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.body = nn.Sequential(nn.LazyLinear(hidden), nn.ReLU())


class BuiltInSetup(TinyNet):
    """Builds its first layer in ``setup()`` from ``self.trainer.datamodule`` (guarded: setup runs per stage)."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.body = None

    def setup(self, stage: str) -> None:
        if self.body is None:
            width = self.trainer.datamodule.num_features
            self.body = nn.Sequential(nn.Linear(width, self.hparams.hidden), nn.ReLU())


class SkipsOddBatches(TinyNet):
    """Returns None for some batches, as Lightning allows: those batches are skipped."""

    skipped = 1  # batch_idx % 2 == skipped returns None

    def training_step(self, batch, batch_idx):
        return None if batch_idx % 2 == self.skipped else super().training_step(batch, batch_idx)


class SkipsEvenBatches(SkipsOddBatches):
    skipped = 0  # the checks' one-step batch among them


class DetachedLoss(TinyNet):
    def loss(self, logits, y):
        return F.cross_entropy(logits, y).detach()


class UnusedLayer(TinyNet):
    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.projection = nn.Linear(hidden, hidden)  # built, never called in forward


class NotInOptimizer(TinyNet):
    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=self.hparams.lr)  # body is never trained


class NaNOutput(TinyNet):
    def forward(self, x):
        return self.head(self.features(x)).log()  # log of raw logits: NaN wherever a logit < 0


class UnseededDropout(TinyNet):
    """Dropout masks from a private generator seeded from the OS: seed_everything cannot reproduce them."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.generator = torch.Generator()
        self.generator.seed()

    def features(self, x):
        h = F.relu(self.body[0](x))
        if self.training:
            h = h * torch.bernoulli(torch.full_like(h, 0.9), generator=self.generator) / 0.9
        return h


class BatchMeanLeak(TinyNet):
    def features(self, x):
        return self.body(x - x.mean(dim=0, keepdim=True))  # centres with the BATCH mean, also in eval


class BatchNormAlwaysTraining(TinyNet):
    def features(self, x):
        return F.batch_norm(self.body(x), None, None, training=True)  # batch statistics in eval mode too


class HparamsNotSaved(TinyNet):
    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        L.LightningModule.__init__(self)  # no save_hyperparameters(): load_from_checkpoint rebuilds defaults
        self.lr = lr
        self.body = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, CLASSES)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class HparamsPartlySaved(HparamsNotSaved):
    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.save_hyperparameters("lr")  # hidden is not saved: a checkpoint of hidden=32 will not load


class StateOutsideStateDict(TinyNet):
    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.scale = torch.rand(FEATURES) + 0.5  # a plain attribute, not a buffer: lost by checkpoints

    def features(self, x):
        return self.body(x * self.scale.to(x.device))


class SavesAnObject(TinyNet):
    """Stores an object of another class beside its tensors: no weights-only load reads it back."""

    def on_save_checkpoint(self, checkpoint):
        checkpoint["tokenizer"] = object.__new__(SimpleTokenizer)


class SimpleTokenizer:
    pass


class CannotLearn(TinyNet):
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


class Diverges(TinyNet):
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e6)  # the loss turns NaN within a few steps


class DataDependentBranch(TinyNet):
    def forward(self, x):
        logits = self.head(self.features(x))
        return logits if bool(x[0, 0] > 0) else -logits  # Python control flow on data: cannot export


class StaleExampleInput(TinyNet):
    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.example_input_array = torch.zeros(2, FEATURES - 3)  # left from an older feature set


class SqueezeDropsBatch(TinyNet):
    """``.squeeze()`` without a dim: fine for the training batches, but a batch of 1 loses its batch dimension."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.example_input_array = torch.zeros(1, FEATURES)

    def forward(self, x):
        return self.head(self.features(x)).squeeze()  # (1, C) -> (C,)


class TinyGenerator(L.LightningModule):
    """A correct module whose forward takes noise, not the batch (like a GAN's generator)."""

    def __init__(self, latent: int = 4, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Linear(latent, FEATURES)
        self.example_input_array = torch.zeros(2, latent)

    def forward(self, z):
        return self.net(z)  # (B, latent) -> (B, F)

    def training_step(self, batch, batch_idx):
        x, _ = batch
        fake = self(torch.randn(x.shape[0], self.hparams.latent, device=x.device))
        return F.mse_loss(fake.mean(0), x.mean(0))  # match the batch's mean

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class ManualTwoOptimizers(TinyNet):
    """Manual optimization with two optimizers (body and head), GAN-style."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        x, y = batch
        body_opt, head_opt = self.optimizers()
        for opt in (body_opt, head_opt):
            loss = self.loss(self(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        self.log("train_loss", loss)

    def configure_optimizers(self):
        return (
            torch.optim.Adam(self.body.parameters(), lr=self.hparams.lr),
            torch.optim.Adam(self.head.parameters(), lr=self.hparams.lr),
        )


class DictOutput(TinyNet):
    def forward(self, x):
        logits = self.head(self.features(x))
        return {"logits": logits, "mean": logits.mean()}  # ONNX exports it; litforge export answers per row


class PaddedSequenceData(L.LightningDataModule):
    """Series of 12 steps (padded) with their valid lengths and a label: batches ``(x, lengths, y)``."""

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(32, 12, FEATURES, generator=generator)
        lengths = torch.randint(3, 13, (32,), generator=generator)
        return DataLoader(
            TensorDataset(x, lengths, torch.randint(0, CLASSES, (32,), generator=generator)), 16
        )


class StaleSequenceExample(L.LightningModule):
    """``forward(x, lengths)`` runs on series of any length, but ``example_input_array`` holds 5 steps: the
    export would take 5 steps only."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.head = nn.Linear(FEATURES, CLASSES)
        self.example_input_array = (torch.zeros(2, 5, FEATURES), torch.tensor([5, 3]))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = (torch.arange(x.shape[1]) < lengths[:, None]).unsqueeze(-1)
        return self.head((x * valid).sum(1) / lengths[:, None].clamp(min=1))

    def training_step(self, batch, batch_idx):
        x, lengths, y = batch
        return F.cross_entropy(self(x, lengths), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class NaNGradient(TinyNet):
    """A finite loss whose gradient is NaN: ``sqrt`` at 0 has an infinite slope, times the 0 inside it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.head(h + torch.sqrt(h * 0))


class SparseEmbeddings(L.LightningModule):
    """Healthy: an ``nn.Embedding(sparse=True)`` trained by ``SparseAdam``, as recommenders are (the
    gradient check used to crash on the sparse gradient)."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.table = nn.Embedding(FEATURES * 4, CLASSES, sparse=True)
        self.automatic_optimization = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = (x.abs() * 3).long().clamp(max=FEATURES * 4 - 1)  # (B, F) ids from the features
        return self.table(ids).mean(1)  # (B, C)

    def training_step(self, batch, batch_idx):
        x, y = batch
        optimizer = self.optimizers()
        loss = F.cross_entropy(self(x), y)
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        return loss

    def configure_optimizers(self):
        return torch.optim.SparseAdam(self.parameters(), lr=self.hparams.lr)


class TinySegData(L.LightningDataModule):
    """Images of 8x8 pixels and their per-pixel classes (bright, dim, dark: 0..2), batches of dicts
    ``{"image": (N, 1, 8, 8), "mask": (N, 8, 8)}``, as segmentation datamodules write them."""

    mask_offset = 0

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(32, 1, 8, 8, generator=generator)
        masks = (images[:, 0] > 0.5).long() + (images[:, 0] > -0.5).long() + self.mask_offset
        samples = [{"image": image, "mask": mask} for image, mask in zip(images, masks, strict=True)]
        return DataLoader(samples, batch_size=8)


class OneBasedMaskData(TinySegData):
    """Per-pixel classes 1..3 for 3 classes."""

    mask_offset = 1


class TinySegNet(L.LightningModule):
    """A correct fully convolutional segmenter, written ``forward(self, x)`` though the batch key is
    ``image``: per-pixel logits (N, 3, H, W)."""

    def __init__(self, num_classes: int = CLASSES, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 1))
        self.example_input_array = torch.zeros(2, 1, 8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self(batch["image"]), batch["mask"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class StaleSegExample(TinySegNet):
    """``example_input_array`` left at an earlier 12x12 size: a fully convolutional net trains on the 8x8 data
    all the same, but its export would take 12x12 images only."""

    def __init__(self, num_classes: int = CLASSES, lr: float = 0.05) -> None:
        super().__init__(num_classes, lr)
        self.example_input_array = torch.zeros(2, 1, 12, 12)


class BatchNormNet(TinyNet):
    """Healthy, with a BatchNorm1d after the hidden layer: it needs two samples per batch in training."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.body = nn.Sequential(nn.Linear(FEATURES, hidden), nn.BatchNorm1d(hidden), nn.ReLU())


class BroadcastLoss(TinyNet):
    """A regressor whose output is (B, 1) against targets of (B,): mse_loss broadcasts to (B, B)."""

    def __init__(self, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__(hidden, lr)
        self.head = nn.Linear(hidden, 1)

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output, y.float())


class ConvertsItsInputs(TinyNet):
    """Healthy with float64 data: forward converts its inputs itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float())


class SqueezeWithAnExampleOfTwo(TinyNet):
    """``.squeeze()`` without a dim and an ``example_input_array`` of 2 rows: only a batch of 1 shows it."""

    def forward(self, x):
        return self.head(self.features(x)).squeeze()
