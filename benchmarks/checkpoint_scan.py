"""What litforge's "can this checkpoint be loaded back weights-only" scan costs per save, beside the save.

python benchmarks/checkpoint_scan.py                      # GPT-2-small-like tensor counts, AdamW state
python benchmarks/checkpoint_scan.py --tensors 2000 --numpy-mb 50

Every save runs ``refuse_unloadable`` on the checkpoint dict (``litforge.resilience.checkpoint_types``): its
structure is pickled without tensor or array bytes and scanned for classes weights-only loading refuses.
This times that scan against ``torch.save`` of the same checkpoint to memory, for a state of ``--tensors``
parameter tensors (each with AdamW's two moments and a step) of ``--mb`` MB in all, plus optional numpy
arrays a module stores in ``on_save_checkpoint`` (``--numpy-mb``). Writes
benchmarks/results/checkpoint_scan.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import environment, print_table, save_results

from litforge.resilience.checkpoint_types import refuse_unloadable


def checkpoint(tensors: int, mb: float, numpy_mb: float) -> dict[str, Any]:
    """A Lightning-shaped checkpoint: state_dict, AdamW state per tensor, loops, callbacks, hparams."""
    numel = max(1, int(mb * 2**20 / 4 / tensors / 3))  # weights and two moments
    weights = {f"layer{i}.weight": torch.randn(numel) for i in range(tensors)}
    state = {
        i: {"step": torch.tensor(10.0), "exp_avg": torch.zeros(numel), "exp_avg_sq": torch.zeros(numel)}
        for i in range(tensors)
    }
    extra = {"class_weights": np.ones(int(numpy_mb * 2**20 / 8))} if numpy_mb else {}
    return {
        "epoch": 3,
        "global_step": 1200,
        "state_dict": weights,
        "optimizer_states": [
            {"state": state, "param_groups": [{"lr": 1e-3, "params": list(range(tensors))}]}
        ],
        "lr_schedulers": [{"last_epoch": 1200, "base_lrs": [1e-3], "_last_lr": [1e-3]}],
        "loops": {"fit_loop": {"epoch_progress": {"total": {"ready": 3, "completed": 3}}}},
        "callbacks": {"RunCheckpoint{'monitor': 'val_loss'}": {"best_model_score": torch.tensor(0.3)}},
        "hyper_parameters": {"lr": 1e-3, "hidden": 768, "backbone_path": Path("weights/backbone.pt")},
        "meta": extra,
    }


def timed(work: Any, repeats: int) -> float:
    """The median seconds of ``repeats`` runs of ``work()``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=150, help="parameter tensors (GPT-2 small has ~150)")
    parser.add_argument("--mb", type=float, default=300.0, help="weights and AdamW moments, MB in all")
    parser.add_argument("--numpy-mb", type=float, default=0.0, help="a numpy array in on_save_checkpoint, MB")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for tensors, numpy_mb in (
        (args.tensors, args.numpy_mb),
        (args.tensors * 10, args.numpy_mb),
        (args.tensors, 50.0),
    ):
        state = checkpoint(tensors, args.mb, numpy_mb)
        scan_s = timed(lambda state=state: refuse_unloadable(state), args.repeats)
        save_s = timed(lambda state=state: torch.save(state, io.BytesIO()), max(1, args.repeats // 2))
        rows.append(
            {
                "tensors": tensors,
                "state_mb": args.mb,
                "numpy_mb": numpy_mb,
                "scan_ms": round(scan_s * 1000, 2),
                "torch_save_ms": round(save_s * 1000, 1),
                "scan_share_of_save": round(scan_s / save_s, 4),
            }
        )
    print_table(rows, list(rows[0]))
    path = save_results("checkpoint_scan", {"environment": environment(), "results": rows}, args.out)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
