"""Epoch loss and macro accuracy as running sums on the device: a few tensor ops per step, no host sync.

The Classifier keeps one per stage and logs it once per epoch. On a CPU, ``self.log`` on every step plus a
torchmetrics update cost about as much as a small MLP's whole training step; these sums cost a tenth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class EpochStats(nn.Module):
    """Sample-weighted mean loss and macro accuracy (over the classes seen) since the last ``reset``."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        # Not in the state_dict: checkpoints, exports and load_from_checkpoint stay as they were.
        for name, shape in (
            ("loss_sum", ()),
            ("count", ()),
            ("hits", (num_classes,)),
            ("support", (num_classes,)),
        ):
            self.register_buffer(name, torch.zeros(shape), persistent=False)

    @torch.no_grad()
    def update(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        # index_add_ rather than bincount: CUDA's bincount uses atomics, which deterministic mode forbids,
        # while index_add_ has a deterministic CUDA kernel. In place, not +=: augmented assignment re-sets
        # the attribute through nn.Module.__setattr__.
        correct = (logits.argmax(dim=-1) == target).to(self.hits.dtype)
        self.hits.index_add_(0, target, correct)
        self.support.index_add_(0, target, torch.ones_like(correct))
        self.loss_sum.add_(loss, alpha=target.numel())
        self.count.add_(target.numel())

    def compute(
        self, reduce_sum: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, macro accuracy); ``reduce_sum`` adds the sums of all processes (DDP) first."""
        loss_sum, count, hits, support = (
            reduce_sum(t.clone()) for t in (self.loss_sum, self.count, self.hits, self.support)
        )
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
