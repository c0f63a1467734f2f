"""The learning-curves plot of a run: which metrics share a panel."""

from __future__ import annotations


def test_learning_curves_put_one_metric_of_every_stage_and_loader_on_one_panel() -> None:
    """train/loss and val/loss landed on separate panels, and val/acc/dataloader_idx_0 shared one with
    val/loss/dataloader_idx_0 under the title idx_0."""
    from litforge.callbacks.learning_curves import metric_family

    names = [
        "train_loss",
        "val_loss",
        "train/loss",
        "val/loss/dataloader_idx_1",
        "val/acc/dataloader_idx_0",
        "val_acc",
    ]
    assert [metric_family(name) for name in names] == ["loss", "loss", "loss", "loss", "acc", "acc"]
    others = ["loss/train", "acc/val", "lr-Adam/pg1", "learning_rate", "val_top1_err"]
    assert [metric_family(name) for name in others] == [
        "loss",
        "acc",
        "lr-Adam/pg1",
        "learning_rate",
        "top1_err",
    ]
