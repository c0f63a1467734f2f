"""Epoch loss and accuracy as running sums on the device, logged without a host sync per step.

litforge fit                                        # the Classifier logs this way
litforge fit --config configs/transformer.yaml      # so does the SequenceTransformer

On a CPU, ``self.log`` on every step plus a torchmetrics update cost about as much as a small MLP's whole
training step; these sums cost a tenth. On a GPU, a metric logged on every step to the progress bar (and
torchmetrics' input checks) read a value back on every step, which stalls the host once per step; these
sums are read once per epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn


class EpochStats(nn.Module):
    """Weighted mean loss and accuracy since the last ``reset``.

    Args:
        num_classes: classes (the accuracy's per-class sums).
        average: ``macro`` (the mean of the per-class accuracies, over the classes seen) or ``micro``
            (correct predictions over all predictions, e.g. token accuracy).
        ignore_index: a target value that is not scored (e.g. -100 for padding).
    """

    def __init__(
        self, num_classes: int, average: Literal["macro", "micro"] = "macro", ignore_index: int | None = None
    ) -> None:
        super().__init__()
        self.average, self.ignore_index = average, ignore_index
        # Not in the state_dict: checkpoints, exports and load_from_checkpoint stay as they were.
        for name, shape in (
            ("loss_sum", ()),
            ("count", ()),
            ("hits", (num_classes,)),
            ("support", (num_classes,)),
        ):
            self.register_buffer(name, torch.zeros(shape), persistent=False)

    @torch.no_grad()
    def update(
        self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor, weight: int | None = None
    ) -> None:
        """Add a batch: ``loss`` weighted by ``weight`` (default: the number of targets), logits (N, C)
        against targets (N,)."""
        # index_add_ rather than bincount: CUDA's bincount uses atomics, which deterministic mode forbids,
        # while index_add_ has a deterministic CUDA kernel. In place, not +=: augmented assignment re-sets
        # the attribute through nn.Module.__setattr__.
        correct = (logits.argmax(dim=-1) == target).to(self.hits.dtype)
        if self.ignore_index is None:
            scored = torch.ones_like(correct)
        else:  # masks, not boolean indexing (which waits for the device)
            valid = target != self.ignore_index
            target, scored = torch.where(valid, target, 0), valid.to(self.hits.dtype)
            correct = correct * scored
        self.hits.index_add_(0, target, correct)
        self.support.index_add_(0, target, scored)
        weight = target.numel() if weight is None else weight
        self.loss_sum.add_(loss, alpha=weight)
        self.count.add_(weight)

    def compute(
        self, reduce_sum: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, accuracy); ``reduce_sum`` adds the sums of all processes (DDP) first."""
        loss_sum, count, hits, support = (
            reduce_sum(t.clone()) for t in (self.loss_sum, self.count, self.hits, self.support)
        )
        if self.average == "micro":
            return loss_sum / count, hits.sum() / support.sum()
        seen = support > 0
        return loss_sum / count, (hits[seen] / support[seen]).mean()

    def reset(self) -> None:
        for buffer in self.buffers():
            buffer.zero_()

    def snapshot(self) -> dict[str, Any]:
        """The sums, for a checkpoint (a mid-epoch resume keeps the epoch's figures)."""
        return {name: buffer.clone() for name, buffer in self.named_buffers()}

    def restore(self, state: dict[str, Any]) -> None:
        for name, buffer in self.named_buffers():
            buffer.copy_(state[name])


class EpochStatsLogging:
    """LightningModule hooks that log ``<stage>_loss`` and ``<stage>_acc`` from ``EpochStats``, no host
    sync per step. The module defines ``train_stats``, ``val_stats`` and ``test_stats`` and feeds them in
    its steps (``self.stats(stage).update(...)``), and calls ``log_step_loss`` in ``training_step``.

    Logged names: ``train_loss_step`` (on the steps the loggers write), ``train_loss_epoch``, ``train_acc``,
    ``val_loss``, ``val_acc``, ``test_loss``, ``test_acc``. Put it before ``L.LightningModule`` among the
    bases, so that its hooks are the ones Lightning calls.
    """

    train_stats: EpochStats
    val_stats: EpochStats
    test_stats: EpochStats

    def stats(self, stage: str) -> EpochStats:
        return getattr(self, f"{stage}_stats")

    def log_step_loss(self, loss: torch.Tensor) -> None:
        """The step loss on the steps the loggers write (every ``log_every_n_steps``): no host sync and
        none of ``self.log``'s bookkeeping on the others; the epoch's figures on its last batch (before the
        epoch-end hooks, so that the progress bar shows them)."""
        trainer = self.trainer  # type: ignore[attr-defined]
        if (self.global_step + 1) % trainer.log_every_n_steps == 0:  # type: ignore[attr-defined]
            self.log("train_loss_step", loss, on_step=True, on_epoch=False)  # type: ignore[attr-defined]
        if trainer.is_last_batch:
            self.log_epoch("train")

    def on_train_epoch_end(self) -> None:
        self.log_epoch("train")  # an epoch cut short (max_steps, a stop) still gets its figures

    def on_validation_epoch_end(self) -> None:
        self.log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch("test")

    def log_epoch(self, stage: str) -> None:
        """Log ``<stage>_loss`` and ``<stage>_acc`` (training: ``train_loss_epoch``, ``train_acc``),
        summed over all processes, then start the next epoch's sums."""
        stats = self.stats(stage)
        if not stats.count:
            return
        reduce = self.trainer.strategy.reduce  # type: ignore[attr-defined]
        loss, accuracy = stats.compute(lambda t: reduce(t, reduce_op="sum"))
        loss_name = "train_loss_epoch" if stage == "train" else f"{stage}_loss"
        log = self.log  # type: ignore[attr-defined]
        log(loss_name, loss, on_step=False, on_epoch=True, prog_bar=stage != "train")
        log(f"{stage}_acc", accuracy, on_step=False, on_epoch=True, prog_bar=stage != "train")
        stats.reset()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["train_stats"] = self.train_stats.snapshot()  # for an exact mid-epoch resume

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "train_stats" in checkpoint:
            self.train_stats.restore(checkpoint["train_stats"])
