"""Training losses kept on the device between two finite-loss checks: collecting them costs no host sync.

litforge fit --trainer.accelerator gpu     # FiniteLossGuard reads them every log_every_n_steps steps
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BadLoss:
    """The first non-finite loss of a batch of pending losses: its value and where it happened."""

    value: float
    epoch: int
    global_step: int


class PendingLosses:
    """Detached losses and the (epoch, global step) of each, read all at once by ``first_non_finite``.

    ``add`` only keeps a reference (no kernel, no copy). Reading the values is what waits for the
    device, so the guard reads them once every N steps instead of once per step.
    """

    def __init__(self) -> None:
        self._losses: list[torch.Tensor] = []
        self._where: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._losses)

    def add(self, loss: torch.Tensor, epoch: int, global_step: int) -> None:
        self._losses.append(loss.detach())
        self._where.append((epoch, global_step))

    def first_non_finite(self) -> BadLoss | None:
        """The first pending loss that is NaN or infinite (``None``: all finite); forgets them all.

        One host sync for all pending losses; one more to find the bad one when there is one.
        """
        losses, where = self._losses, self._where
        self._losses, self._where = [], []
        if not losses:
            return None
        finite = torch.stack([torch.isfinite(loss).all() for loss in losses])  # (N,)
        if bool(finite.all()):
            return None
        index = finite.tolist().index(False)
        values = losses[index].reshape(-1)
        epoch, step = where[index]
        return BadLoss(values[~torch.isfinite(values)][0].item(), epoch, step)
