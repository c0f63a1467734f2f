"""Save ``checkpoints/on_exception.ckpt`` when training crashes with a Python exception.

litforge fit --run my-run     # a crash in training_step leaves checkpoints/on_exception.ckpt
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from litforge.errors import LitforgeError
from litforge.resilience.resume import EXCEPTION_CHECKPOINT


class ExceptionCheckpoint(Checkpoint):
    """Lightning's ``OnExceptionCheckpoint`` idea, without its side effect on resuming.

    Lightning's class makes every ``fit(ckpt_path=None)`` resume silently from the newest ``last`` or
    on-exception checkpoint, which would turn ``--resume never`` into "resume" and resume from a
    mid-step state. This one only saves. The file captures the state in the middle of the failed step,
    so ``--resume auto`` never picks it (``--resume PATH`` can, for inspection or salvage). litforge's
    own stops (preemption: already saved at a step boundary; non-finite loss) save nothing, and neither
    do distributed runs, where the other ranks may no longer take part in the save.

    Args:
        dirpath: the run's checkpoint folder.
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.path = Path(dirpath) / EXCEPTION_CHECKPOINT

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, LitforgeError) or trainer.world_size > 1:
            return
        try:
            trainer.save_checkpoint(self.path, weights_only=False)
        except LitforgeError as refused:  # a checkpoint no command could load: the crash is the news
            print(f"litforge: note: {self.path.name} not saved: {refused}", file=sys.stderr, flush=True)
