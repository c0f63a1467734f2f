"""A callback that times a window of training steps, synchronised with the device at both ends.

gpu_throughput.py adds it to its plain-Lightning variants and, through the generated config's
``trainer.callbacks``, to its ``litforge fit`` variants (the benchmarks folder is on their PYTHONPATH).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch


class StepWindow(L.Callback):
    """Times training batches ``warmup`` .. ``warmup + steps - 1``: from the end of batch ``warmup - 1`` to
    the end of the last one, so the window holds ``steps`` whole step periods (data fetch, hooks, logging,
    checkpoint saves). Writes ``out`` (JSON) when the window closes.

    Args:
        warmup: batches before the window (compilation, allocator warm-up).
        steps: batches in the window.
        out: where to write ``{"ms_per_step", "steps", "saves_in_window", "peak_gpu_mib"}``.
    """

    def __init__(self, warmup: int, steps: int, out: str) -> None:
        self.warmup, self.steps, self.out = warmup, steps, Path(out)
        self._batches = 0
        self._saves = 0
        self._start = 0.0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._batches += 1
        if self._batches == self.warmup:
            _synchronize(pl_module.device)
            self._start = time.perf_counter()
            self._saves = 0
        elif self._batches == self.warmup + self.steps:
            _synchronize(pl_module.device)
            seconds = time.perf_counter() - self._start
            cuda = pl_module.device.type == "cuda"
            result = {
                "ms_per_step": seconds / self.steps * 1e3,
                "steps": self.steps,
                "saves_in_window": self._saves,
                "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            }
            if trainer.is_global_zero:
                self.out.write_text(json.dumps(result))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: Any) -> None:
        self._saves += 1


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
