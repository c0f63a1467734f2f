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


def fit(root: Path, model_class: type[Classifier], ckpt_path: Path | None = None) -> tuple[dict, dict, int]:
    """3 epochs x 5 batches, validation every 3 batches, a checkpoint every 2 steps and at every
    validation end; returns the final model state, optimizer state and global step."""
    L.seed_everything(7, verbose=False)
    data = DigitsDataModule(batch_size=32, seed=3)
    model = model_class(hidden_dim=16, dropout=0.3, input_mean=data.feature_mean, input_std=data.feature_std)
    callbacks = resilience_callbacks(root, every_n_train_steps=2)
    for callback in callbacks:
        if isinstance(callback, PeriodicCheckpoint):
            callback.keep = 1000  # keep every resume point for the test
    callbacks.append(ModelCheckpoint(dirpath=root, filename="val-{step}", save_top_k=-1, monitor=None))
    trainer = L.Trainer(
        max_epochs=3,
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


@pytest.mark.parametrize(
    ("model_class", "only"),
    [
        (Classifier, None),  # every checkpoint
        (OneCycleClassifier, {"step-00000002.ckpt", "step-00000008.ckpt", "val-step=3.ckpt"}),  # mid-epoch
    ],
    ids=["adam-every-checkpoint", "onecycle-20550"],
)
def test_resume_from_checkpoints_is_bitwise_exact(
    tmp_path: Path, model_class: type[Classifier], only: set[str] | None
) -> None:
    reference = fit(tmp_path / "reference", model_class)
    checkpoints = sorted((tmp_path / "reference").glob("*.ckpt"))
    names = {p.name for p in checkpoints}
    # mid-epoch step boundaries, epoch ends (steps 5, 10) and mid-epoch validation ends are all covered
    assert {"step-00000002.ckpt", "step-00000005.ckpt", "step-00000012.ckpt", "val-step=3.ckpt"} <= names
    for checkpoint in checkpoints:
        if checkpoint.name == "step-00000015.ckpt" or (only is not None and checkpoint.name not in only):
            continue  # the end state itself, or outside this case's selection
        resumed_root = tmp_path / f"from-{checkpoint.stem}"
        resumed_root.mkdir()
        start = shutil.copy(checkpoint, resumed_root / "start.ckpt")
        model_state, optimizer_state, step = fit(resumed_root, model_class, ckpt_path=Path(start))
        assert step == reference[2]
        assert_bitwise_equal(model_state, reference[0], f"{checkpoint.name}: model")
        assert_bitwise_equal(optimizer_state, reference[1], f"{checkpoint.name}: optimizer")
