"""litforge's models train without a host sync per step, and their logged metrics stay correct."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from litforge.callbacks import PlainProgressBar
from litforge.data import DigitsDataModule, SequenceTaskDataModule
from litforge.data.sequence import IGNORE_INDEX
from litforge.models import Classifier, SequenceTransformer


def _model(data: DigitsDataModule) -> Classifier:
    return Classifier(
        num_features=data.num_features,
        num_classes=data.num_classes,
        input_mean=data.feature_mean,
        input_std=data.feature_std,
    )


def _trainer(steps: int, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_steps=steps,
        limit_val_batches=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[PlainProgressBar()],
        **kwargs,
    )


def _tiny_transformer() -> tuple[SequenceTransformer, SequenceTaskDataModule]:
    data = SequenceTaskDataModule(task="copy", seq_len=8, num_train=256, num_val=64, batch_size=16)
    return SequenceTransformer(num_classes=16, max_len=8, d_model=16, n_heads=2, n_layers=1), data


def _digits() -> tuple[Classifier, DigitsDataModule]:
    data = DigitsDataModule()
    return _model(data), data


def _host_syncs(make, steps: int) -> int:
    """``.item()``-style reads of tensor values during ``steps`` training steps, outside the optimizer
    (Adam keeps its step counters on the CPU, so those reads never wait for an accelerator)."""
    model, data = make()
    trainer = _trainer(steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.fit(model, datamodule=data)
    count = 0
    for event in prof.events():
        if event.name != "aten::_local_scalar_dense":
            continue
        parent, names = event.cpu_parent, []
        while parent is not None:
            names.append(parent.name)
            parent = parent.cpu_parent
        count += not any(name.startswith("Optimizer.step") for name in names)
    return count


@pytest.mark.parametrize("make", [_digits, _tiny_transformer], ids=["Classifier", "SequenceTransformer"])
def test_host_syncs_do_not_grow_with_the_number_of_steps(make) -> None:
    assert _host_syncs(make, 14) == _host_syncs(make, 7)


def test_logged_metrics_match_a_direct_computation() -> None:
    data = DigitsDataModule()
    model = _model(data)
    _trainer(15).fit(model, datamodule=data)
    (logged,) = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False).validate(
        model, datamodule=data, verbose=False
    )
    model.eval()
    with torch.no_grad():
        logits = model(data.val_x)
    hits = logits.argmax(-1) == data.val_y
    per_class = [hits[data.val_y == c].float().mean() for c in data.val_y.unique()]
    assert logged["val_acc"] == pytest.approx(torch.stack(per_class).mean().item(), abs=1e-6)  # macro average
    assert logged["val_loss"] == pytest.approx(F.cross_entropy(logits, data.val_y).item(), rel=1e-4)


def test_epoch_line_still_shows_the_training_loss(capsys) -> None:
    data = DigitsDataModule()
    _trainer(-1, max_epochs=1, limit_train_batches=3).fit(_model(data), datamodule=data)
    assert "train_loss_epoch=" in capsys.readouterr().out


def test_training_epoch_metrics_match_a_direct_computation() -> None:
    data = DigitsDataModule(batch_size=64)
    model = Classifier(
        num_features=data.num_features,
        num_classes=data.num_classes,
        input_mean=data.feature_mean,
        input_std=data.feature_std,
        dropout=0.0,
    )
    model.hparams.lr = 0.0  # the weights stay put, so the epoch's figures can be recomputed afterwards
    trainer = _trainer(-1, max_epochs=1)
    trainer.fit(model, datamodule=data)
    with torch.no_grad():
        logits = model(data.train_x)
    hits = logits.argmax(-1) == data.train_y
    macro = torch.stack([hits[data.train_y == c].float().mean() for c in data.train_y.unique()]).mean()
    logged = trainer.callback_metrics
    assert logged["train_loss_epoch"].item() == pytest.approx(
        F.cross_entropy(logits, data.train_y).item(), rel=1e-4
    )
    assert logged["train_acc"].item() == pytest.approx(macro.item(), abs=1e-6)


def test_transformer_token_metrics_match_a_direct_computation() -> None:
    """Token accuracy (micro, the prompt half of the copy task not scored) and the epoch loss, from the
    device-side sums, equal what torchmetrics and cross-entropy give on the same batches."""
    from torchmetrics.classification import MulticlassAccuracy

    torch.manual_seed(0)
    model, data = _tiny_transformer()
    model.hparams.lr = 0.0  # the weights stay put, so the epoch's figures can be recomputed afterwards
    trainer = _trainer(-1, max_epochs=1)
    trainer.fit(model, datamodule=data)
    tokens, targets = data.splits["train"].tensors
    with torch.no_grad():
        logits = model(tokens)
    reference = MulticlassAccuracy(16, average="micro", ignore_index=IGNORE_INDEX)
    logged = trainer.callback_metrics
    assert logged["train_acc"].item() == pytest.approx(
        reference(logits.flatten(0, 1), targets.flatten()).item()
    )
    assert logged["train_loss_epoch"].item() == pytest.approx(model.loss(logits, targets).item(), rel=1e-5)
