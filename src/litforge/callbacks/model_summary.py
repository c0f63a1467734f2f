"""Lightning's model summary (layers, parameters, FLOPs) without disabling ``torch.compile`` for the run.

litforge fit --config configs/transformer.yaml --model.compile true   # litforge adds it to every fit

Lightning counts FLOPs by running ``example_input_array`` under torch's ``FlopCounterMode``, a dispatch
mode. Dynamo refuses to compile a frame while such a mode is active ("non-infra torch dispatch mode
present") and remembers that refusal for the frame's code: a compiled module whose first call is the
summary's never compiles afterwards, and training runs eager. On an H200 that made ``--model.compile
true`` worth nothing (42.9 vs 43.0 ms/step, see docs/memory-and-speed.md). Running the summary under
``torch.compiler.set_stance("force_eager")`` keeps the table and the FLOP count and leaves compilation
to the first training step.
"""

from __future__ import annotations

import sys
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelSummary, RichModelSummary


class EagerModelSummary(RichModelSummary):
    """``RichModelSummary`` computed with compilation off, so compiled modules still compile in training;
    Lightning's plain-text table when stdout is not a terminal (a log file gets no box drawing)."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with torch.compiler.set_stance("force_eager"):
            super().on_fit_start(trainer, pl_module)

    @staticmethod
    def summarize(*args: Any, **summarize_kwargs: Any) -> None:
        table = RichModelSummary if sys.stdout.isatty() else ModelSummary
        table.summarize(*args, **summarize_kwargs)
