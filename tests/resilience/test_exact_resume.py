"""Resuming from ANY checkpoint a run writes (periodic step boundaries, epoch ends, validation ends)
ends bit for bit where the uninterrupted run ends: weights, optimizer state, also with a step-wise
OneCycleLR built from ``trainer.estimated_stepping_batches`` (Lightning #20550)."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from resilience_helpers import assert_bitwise_equal

from litforge.data import DigitsDataModule
from litforge.models import Classifier
from litforge.resilience import AtomicCheckpointIO, PeriodicCheckpoint, resilience_callbacks


class OneCycleClassifier(Classifier):
    """Reads ``trainer.estimated_stepping_batches`` in ``configure_optimizers`` (Lightning #20550)."""

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def fit(
    root: Path, model_class: type[Classifier], fast_path: bool, ckpt_path: Path | None = None
) -> tuple[dict, dict, int]:
    """2 epochs x 5 batches (of the 40 the loader has: the epochs stop before the loader runs out), validation every 3 batches and at epoch ends; checkpoints at every step
    boundary (``batch-end/``, including each epoch's last batch), every epoch end and every validation
    end. Returns the final model state, optimizer state and global step."""
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
    trainer = L.Trainer(
        max_epochs=2,
        limit_train_batches=5,
        limit_val_batches=2,
        val_check_interval=3,
        deterministic=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=root,
        callbacks=callbacks,
    )
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return model.state_dict(), trainer.optimizers[0].state_dict(), trainer.global_step


ONECYCLE_ONLY = {
    "batch-end/step-00000002.ckpt",
    "batch-end/step-00000005.ckpt",
    "batch-end/step-00000007.ckpt",
}


@pytest.mark.parametrize(
    ("model_class", "only", "fast_path"),
    [
        (Classifier, None, True),  # every checkpoint, the default fast loader (TensorBatchLoader)
        (Classifier, None, False),  # every checkpoint, StatefulDataLoader + SeededRandomSampler
        (OneCycleClassifier, ONECYCLE_ONLY, True),  # mid-epoch and after an epoch's last batch
    ],
    ids=["adam-every-checkpoint", "adam-every-checkpoint-standard-loader", "onecycle-20550"],
)
def test_resume_from_checkpoints_is_bitwise_exact(
    tmp_path: Path, model_class: type[Classifier], only: set[str] | None, fast_path: bool
) -> None:
    reference = fit(tmp_path / "reference", model_class, fast_path)
    checkpoints = sorted((tmp_path / "reference").glob("**/*.ckpt"))
    names = {f"{p.parent.name}/{p.name}" for p in checkpoints}
    # step boundaries (also after an epoch's last batch), epoch ends and validation ends are all covered
    assert {
        "batch-end/step-00000005.ckpt",
        "reference/step-00000005.ckpt",
        "reference/val-step=3.ckpt",
        "reference/val-step=8.ckpt",
    } <= names
    for checkpoint in checkpoints:
        name = f"{checkpoint.parent.name}/{checkpoint.name}"
        if checkpoint.name == "step-00000010.ckpt" or (only is not None and name not in only):
            continue  # the end state itself, or outside this case's selection
        resumed_root = tmp_path / f"from-{checkpoint.parent.name}-{checkpoint.stem}"
        resumed_root.mkdir()
        start = shutil.copy(checkpoint, resumed_root / "start.ckpt")
        model_state, optimizer_state, step = fit(resumed_root, model_class, fast_path, ckpt_path=Path(start))
        assert step == reference[2]
        assert_bitwise_equal(model_state, reference[0], f"{checkpoint.name}: model")
        assert_bitwise_equal(optimizer_state, reference[1], f"{checkpoint.name}: optimizer")
