"""Lightning's ``OnExceptionCheckpoint``, quiet for litforge's deliberate stops.

litforge fit --run my-run     # a crash in training_step leaves checkpoints/on_exception.ckpt
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import OnExceptionCheckpoint

from litforge.cli.errors import LitforgeError


class ExceptionCheckpoint(OnExceptionCheckpoint):
    """Saves ``on_exception.ckpt`` when training raises, except for litforge's own stops (a preemption
    already saved at a step boundary; a non-finite loss must not be resumed from).

    The file captures the state in the middle of the failed step, so ``--resume auto`` never picks it;
    the periodic checkpoints are the exact resume points.
    """

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, LitforgeError):
            return
        super().on_exception(trainer, pl_module, exception)
