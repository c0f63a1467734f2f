"""Resuming from ANY checkpoint a run writes (periodic step boundaries, epoch ends, validation ends)
ends bit for bit where the uninterrupted run ends: weights, optimizer state, step and epoch, also with a
step-wise OneCycleLR built from ``trainer.estimated_stepping_batches`` (Lightning #20550), and when
``EarlyStopping`` stops the run at an epoch end or in the middle of an epoch."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
import torchmetrics
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from resilience_helpers import assert_bitwise_equal

from litforge.data import DigitsDataModule
from litforge.models import Classifier
from litforge.resilience import AtomicCheckpointIO, PeriodicCheckpoint, resilience_callbacks


class OneCycleClassifier(Classifier):
    """Reads ``trainer.estimated_stepping_batches`` in ``configure_optimizers`` (Lightning #20550), logs
    epoch aggregates as users do (``train_mean_epoch``: Lightning restarts such sums at a resume) and a
    torchmetrics ``Metric`` object (its sums are outside ``state_dict()``: they restarted too), and keeps
    an EMA of a weight in its own ``on_train_batch_end`` (Lightning calls it after the callbacks' hooks,
    where step checkpoints used to be taken: one update behind). Its validation ``Metric`` object's state
    was in a checkpoint written at a validation's end, and a resume added it to the next validation's."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_buffer("ema", torch.zeros(()))
        self.train_metric = torchmetrics.MeanMetric()  # logged as an object: its sums are not in state_dict()
        self.val_metric = torchmetrics.MeanMetric()  # reset by Lightning after each validation, not resumed

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.mul_(0.5).add_(next(self.parameters()).detach().sum())

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train_mean", loss.detach(), on_step=False, on_epoch=True)
        self.log("train_max", loss.detach(), on_step=False, on_epoch=True, reduce_fx="max")
        self.log("seen", float(batch_idx + 1), on_step=False, on_epoch=True, reduce_fx="sum")
        self.train_metric.update(loss.detach() * (batch_idx + 1))
        self.log("train_metric", self.train_metric, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        self.val_metric.update(next(self.parameters()).detach().sum() + batch_idx)
        self.log("val_metric", self.val_metric)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class PlateauClassifier(Classifier):
    """Halves its learning rate at every epoch end (``ReduceLROnPlateau`` on ``val_loss``, patience 0, a
    threshold no epoch meets): a step Lightning skipped in the epoch a run resumed in."""

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, patience=0, factor=0.5, threshold=10.0
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}


def fit(
    root: Path,
    model_class: type[Classifier],
    fast_path: bool,
    ckpt_path: Path | None = None,
    patience: int | None = None,
    val_every: int = 3,
) -> tuple[dict, dict, int, int, dict]:
    """2 epochs x 5 batches (of the 40 the loader has: the epochs stop before the loader runs out),
    validation every ``val_every`` batches; checkpoints at every step boundary (``batch-end/``,
    including each epoch's last batch), every epoch end and every validation end. With ``patience``, up
    to 3 epochs and an ``EarlyStopping`` that stops after ``patience`` validations without improvement.
    Returns the final model state, optimizer state, global step, epoch and each ended epoch's aggregates."""
    L.seed_everything(7, verbose=False)
    data = DigitsDataModule(batch_size=32, seed=3, fast_path=fast_path)
    model = model_class(hidden_dim=16, dropout=0.3, input_mean=data.feature_mean, input_std=data.feature_std)
    callbacks = resilience_callbacks(root, every_n_train_steps=2)
    for callback in callbacks:
        if isinstance(callback, PeriodicCheckpoint):
            callback.keep = 1000  # keep every resume point for the test
    callbacks.append(ModelCheckpoint(dirpath=root, filename="val-{step}", save_top_k=-1, monitor=None))
    every_step = PeriodicCheckpoint(root / "batch-end", every_n_train_steps=1, keep=1000, on_epoch_end=False)
    callbacks.append(every_step)
    if patience is not None:  # val_loss never improves by 100: stops at the (patience + 1)-th validation
        callbacks.append(EarlyStopping(monitor="val_loss", patience=patience, min_delta=100.0))
    trainer = L.Trainer(
        max_epochs=2 if patience is None else 3,
        limit_train_batches=5,
        limit_val_batches=2,
        val_check_interval=val_every,
        deterministic=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=root,
        callbacks=callbacks,
    )
    epochs = EpochValues()
    trainer.callbacks.append(epochs)
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return (
        model.state_dict(),
        trainer.optimizers[0].state_dict(),
        trainer.global_step,
        trainer.current_epoch,
        epochs.values,
    )


class EpochValues(L.Callback):
    """The epoch aggregates each epoch ended with: ``{epoch: {"train_mean": ..., ...}}``."""

    def __init__(self) -> None:
        self.values: dict[int, dict[str, float]] = {}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        logged = trainer.callback_metrics
        names = ("train_mean", "train_max", "seen", "train_metric", "val_metric")
        self.values[trainer.current_epoch] = {n: logged[n].item() for n in names if n in logged}


ONECYCLE_ONLY = {
    "reference/val-step=3.ckpt",  # a validation's metric state in it was added to the next validation's
    "batch-end/step-00000002.ckpt",
    "batch-end/step-00000005.ckpt",
    "batch-end/step-00000007.ckpt",
}


# Every checkpoint of the plateau run but the two written at an epoch's last batch before its end (the
# batch-end/ test instance saves there; litforge's own periodic checkpoint waits for the epoch end): Lightning
# resumes from them past the epoch end, so that epoch's validation and plateau step never run.
PLATEAU_ONLY = {
    *(f"batch-end/step-{step:08d}.ckpt" for step in (1, 2, 3, 4, 6, 7, 8, 9)),
    *(f"reference/step-{step:08d}.ckpt" for step in (2, 4, 5, 6, 8, 10)),
    "reference/val-step=3.ckpt",
    "reference/val-step=8.ckpt",
}


# Written by the validation in the middle of an epoch that decided to stop, an instant before the epoch-end
# checkpoint of the same step (early-stop-mid-epoch).
STOPPED_AT_8 = {"batch-end/step-00000008.ckpt", "reference/val-step=8.ckpt"}


@pytest.mark.parametrize(
    ("model_class", "only", "fast_path", "patience", "val_every", "final_step", "stopped_mid_epoch"),
    [
        # every checkpoint, the default fast loader (TensorBatchLoader)
        (Classifier, None, True, None, 3, 10, set()),
        # every checkpoint, StatefulDataLoader + SeededRandomSampler
        (Classifier, None, False, None, 3, 10, set()),
        # mid-epoch and after an epoch's last batch
        (OneCycleClassifier, ONECYCLE_ONLY, True, None, 3, 10, set()),
        # ReduceLROnPlateau at each epoch end: mid-epoch, at an epoch end, after a validation
        (PlateauClassifier, PLATEAU_ONLY, True, None, 3, 10, set()),
        # EarlyStopping stops at the end of epoch 1 (its 2nd validation, after the epoch's last batch)
        (Classifier, None, True, 1, 5, 10, set()),
        (Classifier, None, False, 1, 5, 10, set()),
        # ... in the middle of epoch 1 (at the validation of step 8)
        (Classifier, None, True, 1, 3, 8, STOPPED_AT_8),
    ],
    ids=[
        "adam-every-checkpoint",
        "adam-every-checkpoint-standard-loader",
        "onecycle-20550",
        "plateau-each-epoch",
        "early-stop-at-epoch-end",
        "early-stop-at-epoch-end-standard-loader",
        "early-stop-mid-epoch",
    ],
)
def test_resume_from_checkpoints_is_bitwise_exact(
    tmp_path: Path,
    model_class: type[Classifier],
    only: set[str] | None,
    fast_path: bool,
    patience: int | None,
    val_every: int,
    final_step: int,
    stopped_mid_epoch: set[str],
) -> None:
    def run(root: Path, ckpt_path: Path | None = None) -> tuple[dict, dict, int, int, dict]:
        return fit(root, model_class, fast_path, ckpt_path, patience=patience, val_every=val_every)

    reference = run(tmp_path / "reference")
    assert reference[2] == final_step
    checkpoints = sorted((tmp_path / "reference").glob("**/*.ckpt"))
    names = {f"{p.parent.name}/{p.name}" for p in checkpoints}
    # step boundaries (also after an epoch's last batch), epoch ends and validation ends are all covered
    validation = f"reference/val-step={val_every}.ckpt"
    assert {"batch-end/step-00000005.ckpt", "reference/step-00000005.ckpt", validation} <= names
    for checkpoint in checkpoints:
        name = f"{checkpoint.parent.name}/{checkpoint.name}"
        if only is not None and name not in only:
            continue
        # Also the last ones, written after the stop was decided (a kill before the run is marked finished).
        resumed_root = tmp_path / f"from-{checkpoint.parent.name}-{checkpoint.stem}"
        resumed_root.mkdir()
        start = shutil.copy(checkpoint, resumed_root / "start.ckpt")
        resumed = run(resumed_root, Path(start))
        expected = reference[2:4]
        if name in stopped_mid_epoch:  # the same step, without that epoch's end (see StopRequest)
            expected = (reference[2], reference[3] - 1)
        assert resumed[2:4] == expected, f"{name}: (step, epoch) {resumed[2:4]} != {expected}"
        for epoch, values in resumed[4].items():  # the epochs this run ended, also the one it resumed in
            assert values == reference[4][epoch], f"{name}: epoch {epoch} aggregates"
        assert_bitwise_equal(resumed[0], reference[0], f"{name}: model")
        assert_bitwise_equal(resumed[1], reference[1], f"{name}: optimizer")
