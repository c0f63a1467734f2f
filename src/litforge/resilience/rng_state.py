"""Random-number-generator state in every checkpoint, so a resumed run draws the same numbers.

litforge fit --resume auto          # litforge adds ``RNGState`` to every fit
"""

from __future__ import annotations

import random
import sys
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class RNGState(Callback):
    """Saves and restores the Python, NumPy, torch CPU and (when present) CUDA generator states.

    Lightning saves none of them, so dropout masks and random augmentations after a resume differ from
    the uninterrupted run. The states are stored as plain tensors, ints and tuples, so checkpoints still
    load with ``weights_only=True``. In distributed runs the checkpoint holds rank 0's states; with one
    seed on every rank (``seed_everything``) the ranks' generators are identical anyway.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._threads_before: int | None = None  # the torch threads the checkpoint's run trained on
        self.torch_state_at_resume: torch.Tensor | None = (
            None  # for a shuffling sampler (ResumableTrainLoader)
        )

    def state_dict(self) -> dict[str, Any]:
        return {**capture_rng_state(), "torch_threads": torch.get_num_threads()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        restore_rng_state(state_dict)
        self._pending = state_dict
        self.torch_state_at_resume = state_dict["torch"]
        self._threads_before = state_dict.get("torch_threads")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # ``load_state_dict`` runs during checkpoint restore; nothing between it and the first batch may
        # draw random numbers that the uninterrupted run did not draw. Restoring again here is cheap.
        if self._pending is not None:
            restore_rng_state(self._pending)
            self._pending = None
        threads = torch.get_num_threads()
        on_cpu = trainer.strategy.root_device.type == "cpu"  # a GPU's sums do not split by host threads
        if self._threads_before not in (None, threads) and on_cpu and trainer.is_global_zero:
            # a CPU matmul splits its sums by thread: the same steps then round differently
            print(
                f"litforge: note: the run trained on {self._threads_before} torch threads and resumes on "
                f"{threads}: its numbers may differ from an uninterrupted run's in the last bits (for a "
                f"bit-exact resume, run with OMP_NUM_THREADS={self._threads_before})",
                file=sys.stderr,
                flush=True,
            )


def capture_rng_state() -> dict[str, Any]:
    """The current states of Python's ``random``, NumPy's global generator, torch CPU and CUDA."""
    name, keys, pos, has_gauss, cached_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gauss": float(cached_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the states that ``capture_rng_state`` returned."""
    random.setstate(_as_tuples(state["python"]))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["name"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` needs tuples; some serialisers turn them into lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
