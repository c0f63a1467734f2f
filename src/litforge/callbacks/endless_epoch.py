"""A note when an epoch may never end: a training loader without a length (an ``IterableDataset`` stream)
and no ``limit_train_batches``. For an endless stream Lightning then never validates, never saves at an epoch end and never reaches
``max_epochs``; it says nothing, and a run with ``--monitor val_f1`` only learns at its end that no
``val_f1`` was logged. litforge adds it to every fit::

    litforge fit --model mymod.Tagger --data mymod.StreamData                  # the note
    litforge fit ... --trainer.limit_train_batches 200                         # epochs of 200 batches
"""

from __future__ import annotations

import math
import sys

import lightning as L


class EndlessEpochNote(L.Callback):
    """Print one note at the start of training when an epoch lasts as long as the stream (see the module)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not math.isinf(trainer.num_training_batches):
            return
        validates = trainer.val_check_batch is None or not math.isinf(trainer.val_check_batch)
        stops = (
            f"training stops at max_steps {trainer.max_steps}"
            if trainer.max_steps > 0
            else "it trains until stopped"
        )
        print(
            "litforge: note: the training loader has no length, so an epoch ends only when its stream does "
            f"(an endless one: never); until then {'' if validates else 'no validation, '}no epoch-end "
            f"checkpoint, and {stops}; set "
            "--trainer.limit_train_batches N to make an epoch N batches"
            + ("" if validates else " (or --trainer.val_check_interval N to validate every N batches)"),
            file=sys.stderr,
            flush=True,
        )
