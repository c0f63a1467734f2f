"""The standard checks on litforge's default model (``Classifier`` on ``DigitsDataModule``), run with
litforge's own testing toolkit: forward shape, scalar loss, fast_dev_run, overfitting one batch, checkpoint
round-trip."""

from __future__ import annotations

import pytest
import torch

from litforge.data import DigitsDataModule
from litforge.models import Classifier
from litforge.testing import Subject, check_checkpoint, check_forward, check_overfit, check_training_step


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def digits_classifier(request) -> Subject:
    data = DigitsDataModule(batch_size=16)
    model = Classifier(
        num_features=data.num_features,
        num_classes=data.num_classes,
        hidden_dim=64,
        lr=3e-3,
        arch=request.param,
        input_mean=data.feature_mean,
        input_std=data.feature_std,
    )
    return Subject(model, data)


def test_forward_gives_one_row_of_class_logits_per_sample(digits_classifier):
    assert check_forward(digits_classifier) == "(16, 64) float32 -> (16, 10) float32"


def test_training_step_returns_a_scalar_loss(digits_classifier):
    assert check_training_step(digits_classifier).endswith("requires grad")


def test_fast_dev_run_fit(digits_classifier, tiny_trainer):
    trainer = tiny_trainer(fast_dev_run=True)
    trainer.fit(digits_classifier.new_model(), datamodule=digits_classifier.datamodule)
    assert trainer.state.finished and trainer.global_step == 1
    assert torch.isfinite(trainer.callback_metrics["val_loss"])


def test_overfits_one_batch_below_0_01(digits_classifier):
    check_overfit(digits_classifier, steps=300, threshold=0.01)


def test_checkpoint_round_trip_equal_hparams_and_identical_predictions(digits_classifier):
    expected = len(digits_classifier.model.hparams)  # every init arg but the linked statistics
    assert expected >= 6 and "input_mean" not in digits_classifier.model.hparams
    assert check_checkpoint(digits_classifier).startswith(
        f"equal hparams ({expected} keys), identical eval outputs"
    )
