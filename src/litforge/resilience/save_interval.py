"""A checkpoint interval in minutes of wall time, agreed by all processes without a collective per step.

PeriodicCheckpoint(dirpath, every_n_minutes=10)     # a save at least every 10 minutes

A time-based interval keeps the cost of saving independent of how fast the steps are: a model whose steps
take 5 ms saves as often as one whose steps take 500 ms. In a distributed run every process must save at
the same step, but their clocks differ; asking rank 0 at every step would add a collective (and, with
NCCL, a host sync) to every step. Instead rank 0 is asked only at *check steps*: it answers whether the
interval is over and, if not, how many steps it expects are left, from the steps per second so far; the
next check comes after half of them, so a run that slows down is still saved close to on time, with a
few collectives per interval (about log2 of its steps) instead of one per step.
"""

from __future__ import annotations

import math
import time

import lightning as L

PROBE_STEPS = 10  # the first check, to measure the step rate


class MinutesInterval:
    """Tells ``PeriodicCheckpoint`` when ``minutes`` of wall time have passed since the last save.

    ``due`` must be called by every process after every training step (it is a collective at check
    steps); ``saved`` after every save, whatever triggered it.
    """

    def __init__(self, minutes: float) -> None:
        if minutes <= 0:
            raise ValueError(f"every_n_minutes must be > 0, got {minutes}")
        self.seconds = minutes * 60
        self._since = 0.0
        self._since_step = 0
        self._check_at = PROBE_STEPS

    def start(self, trainer: L.Trainer) -> None:
        """The clock starts with training (also a resumed one)."""
        self._since, self._since_step = time.monotonic(), trainer.global_step
        self._check_at = trainer.global_step + PROBE_STEPS

    def due(self, trainer: L.Trainer) -> bool:
        step = trainer.global_step
        if step < self._check_at:
            return False
        elapsed = time.monotonic() - self._since
        steps_left = 0
        if elapsed < self.seconds:
            rate = (step - self._since_step) / max(elapsed, 1e-9)  # steps per second since the last save
            steps_left = max(1, math.ceil((self.seconds - elapsed) * rate))
        steps_left = trainer.strategy.broadcast(steps_left, src=0)  # rank 0's clock decides
        if steps_left:
            self._check_at = step + math.ceil(steps_left / 2)
        return steps_left == 0

    def saved(self, trainer: L.Trainer) -> None:
        """A save happened: the next one is due ``seconds`` from now, expected as many steps away as the
        last interval took (a step count every process knows, so no collective is needed); the first
        check comes after half of them."""
        step = trainer.global_step
        taken = step - self._since_step
        self._check_at = step + (math.ceil(taken / 2) if taken > 0 else PROBE_STEPS)
        self._since, self._since_step = time.monotonic(), step
