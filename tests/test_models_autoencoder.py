"""AutoEncoder: under manual optimization each scheduler steps at exactly the interval its config names."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.callbacks import ModelCheckpoint

from litforge.data import DigitsDataModule
from litforge.models import AutoEncoder

BATCHES, STEP_SIZE, GAMMA, T_MAX = 3, 2, 0.5, 40


class RecordLRs(L.Callback):
    """(epoch, encoder lr, decoder lr) seen at the start of every training batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        encoder, decoder = (opt.param_groups[0]["lr"] for opt in trainer.optimizers)
        self.seen.append((trainer.current_epoch, encoder, decoder))


def expected(epoch: int, steps: int) -> tuple[float, float]:
    """StepLR after ``epoch`` epochs, CosineAnnealingLR after ``steps`` batches (closed forms)."""
    encoder = 1e-3 * GAMMA ** (epoch // STEP_SIZE)
    decoder = 1e-4 * (1 + math.cos(math.pi * steps / T_MAX)) / 2
    return encoder, decoder


def _fit(tmp_path: Path, max_epochs: int, ckpt_path: str | None = None) -> tuple[AutoEncoder, RecordLRs]:
    model = AutoEncoder(hidden_dim=16, latent_dim=4, step_size=STEP_SIZE, gamma=GAMMA, cosine_t_max=T_MAX)
    record = RecordLRs()
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=max_epochs, limit_train_batches=BATCHES, limit_val_batches=1,
        num_sanity_val_steps=0, logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[record, ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)],
    )  # fmt: skip
    trainer.fit(model, DigitsDataModule(batch_size=16), ckpt_path=ckpt_path)
    return model, record


def test_learning_rates_follow_the_schedulers_formulas(tmp_path: Path) -> None:
    model, record = _fit(tmp_path, max_epochs=5)
    assert len(record.seen) == 5 * BATCHES
    for k, (epoch, encoder, decoder) in enumerate(record.seen):
        assert epoch == k // BATCHES
        assert (encoder, decoder) == pytest.approx(expected(epoch, k), rel=1e-6), f"batch {k}"
    final = tuple(opt.optimizer.param_groups[0]["lr"] for opt in model.optimizers())
    assert final == pytest.approx(expected(5, 5 * BATCHES), rel=1e-6)


def test_resume_restores_both_schedulers(tmp_path: Path) -> None:
    _fit(tmp_path, max_epochs=3)
    _, record = _fit(tmp_path, max_epochs=5, ckpt_path=str(tmp_path / "last.ckpt"))
    assert [epoch for epoch, _, _ in record.seen] == [3] * BATCHES + [4] * BATCHES
    for k, (epoch, encoder, decoder) in enumerate(record.seen, start=3 * BATCHES):
        assert (encoder, decoder) == pytest.approx(expected(epoch, k), rel=1e-6), f"batch {k}"
