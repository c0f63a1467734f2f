"""Peak training memory and step time of the SequenceTransformer: baseline vs activation checkpointing vs
mixed precision, each variant in a fresh process.

python benchmarks/memory.py                       # batch 32, sequence 512 (activations dominate)
python benchmarks/memory.py --steps 5 --n-layers 4 --seq-len 1024

Memory is the peak above the pre-training baseline: on CUDA ``torch.cuda.max_memory_allocated`` minus
the allocation before the first step; on CPU the process's peak RSS (``ru_maxrss``) minus its RSS before
the first step. Variants run through Lightning Fabric with the same precision plugins the Trainer uses.
Writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from typing import Any

import torch
from _common import (
    environment,
    fabric_transformer,
    print_table,
    run_variant,
    save_results,
    transformer_args,
    worker_or_shape,
)


def variants(cuda: bool) -> list[dict[str, Any]]:
    rows = [
        {"name": "baseline", "precision": "32-true", "checkpointing": False},
        {"name": "activation checkpointing", "precision": "32-true", "checkpointing": True},
        {"name": "bf16-mixed", "precision": "bf16-mixed", "checkpointing": False},
        {"name": "checkpointing + bf16-mixed", "precision": "bf16-mixed", "checkpointing": True},
    ]
    if cuda:
        rows.append({"name": "16-mixed", "precision": "16-mixed", "checkpointing": False})
        rows.append({"name": "checkpointing + 16-mixed", "precision": "16-mixed", "checkpointing": True})
    return rows


def worker(config: dict[str, Any]) -> dict[str, Any]:
    from litforge.data.sequence import make_task

    cuda = torch.cuda.is_available()
    fabric, model = fabric_transformer(config, activation_checkpointing=config["checkpointing"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = fabric.setup(model, optimizer)
    tokens, targets = make_task(
        "reverse", config["batch_size"], config["seq_len"], config["vocab"], torch.Generator().manual_seed(0)
    )
    tokens, targets = fabric.to_device((tokens, targets))

    def step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(model(tokens), targets)
        fabric.backward(loss)
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    times = [step() for _ in range(config["steps"] + 1)][
        1:
    ]  # the first step warms up (and allocates Adam state)
    peak = (
        torch.cuda.max_memory_allocated()
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "name": config["name"],
        "peak_mib": (peak - base) / 2**20,
        "step_s": statistics.median(times),
        "memory_measure": "cuda max_memory_allocated" if cuda else "cpu peak RSS delta",
        "sdpa_backend": _sdpa_backend(cuda),
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _sdpa_backend(cuda: bool) -> str:
    if not cuda:
        return "cpu"
    return "flash" if torch.backends.cuda.flash_sdp_enabled() else "efficient/math"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    transformer_args(parser, seq_len=512, n_layers=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    shape = worker_or_shape(parser.parse_args(), worker)
    if shape is None:
        return
    env = environment()
    rows = [run_variant(__file__, {**variant, **shape}) for variant in variants(env["cuda"])]
    base = rows[0]
    for row in rows:
        row["memory_vs_baseline"] = f"{row['peak_mib'] / base['peak_mib'] - 1:+.0%}"
        row["time_vs_baseline"] = f"{row['step_s'] / base['step_s'] - 1:+.0%}"
    print(f"{env['device']}, torch {env['torch']}, {env['cpu_threads']} threads; {shape}")
    print_table(rows, ["name", "peak_mib", "memory_vs_baseline", "step_s", "time_vs_baseline"])
    print(
        f"saved {save_results('memory', {'environment': env, 'shape': shape, 'rows': rows})}", file=sys.stderr
    )


if __name__ == "__main__":
    main()
