"""``torch.compile`` vs eager for the SequenceTransformer: steady-state training throughput, compile time,
and what a short last batch costs, each variant in a fresh process.

python benchmarks/compile.py
python benchmarks/compile.py --batches 50 --seq-len 128

Each variant trains two epochs of ``--batches`` full batches (plus one short batch unless drop_last);
epoch 1 pays compilation, epoch 2 is the steady state. ``compile_s`` = epoch-1 time - epoch-2 time;
``graphs`` = distinct graphs Dynamo compiled (a short last batch adds one with ``dynamic=False``; with
the default ``dynamic=None`` it triggers a recompile with dynamic shapes). Writes
benchmarks/results/compile.json.
"""

from __future__ import annotations

import argparse
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

VARIANTS = [
    {"name": "eager", "compile": False, "dynamic": False, "drop_last": True},
    {"name": "compile dynamic=False, drop_last", "compile": True, "dynamic": False, "drop_last": True},
    {
        "name": "compile dynamic=False, short last batch",
        "compile": True,
        "dynamic": False,
        "drop_last": False,
    },
    {
        "name": "compile dynamic=None (default), short last batch",
        "compile": True,
        "dynamic": None,
        "drop_last": False,
    },
]


def worker(config: dict[str, Any]) -> dict[str, Any]:
    from torch._dynamo.utils import counters

    from litforge.data.sequence import make_task

    cuda = torch.cuda.is_available()
    fabric, model = fabric_transformer(config, compile=config["compile"])
    if config["compile"] and config["dynamic"] is None:
        for block in model.blocks:
            block.compile()  # torch's default: automatic dynamic shapes after a shape change
    else:
        model.configure_model()  # what the Trainer calls: litforge compiles each block with dynamic=False
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = fabric.setup(model, optimizer)
    size = config["batch_size"] * config["batches"] + (
        0 if config["drop_last"] else config["batch_size"] // 2
    )
    tokens, targets = make_task(
        "reverse", size, config["seq_len"], config["vocab"], torch.Generator().manual_seed(0)
    )
    batches = list(zip(tokens.split(config["batch_size"]), targets.split(config["batch_size"]), strict=True))
    if config["drop_last"]:
        batches = [b for b in batches if len(b[0]) == config["batch_size"]]

    def epoch() -> float:
        start = time.perf_counter()
        for x, y in batches:
            x, y = fabric.to_device((x, y))
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(model.loss(model(x), y))
            optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first, second = epoch(), epoch()
    return {
        "name": config["name"],
        "epoch1_s": first,
        "epoch2_s": second,
        "compile_s": first - second if config["compile"] else 0.0,
        "seq_per_s": size / second,
        "graphs": int(counters["stats"]["unique_graphs"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    transformer_args(parser, seq_len=64, n_layers=2)
    parser.add_argument("--batches", type=int, default=20, help="full batches per epoch")
    parser.add_argument("--precision", default="32-true", help="e.g. 16-mixed or bf16-mixed on a GPU")
    shape = worker_or_shape(parser.parse_args(), worker)
    if shape is None:
        return
    env = environment()
    rows = [run_variant(__file__, {**variant, **shape}) for variant in VARIANTS]
    eager = rows[0]["seq_per_s"]
    for row in rows:
        row["speedup"] = f"{row['seq_per_s'] / eager:.2f}x"
    print(f"{env['device']}, torch {env['torch']}, {env['cpu_threads']} threads; {shape}")
    print_table(rows, ["name", "seq_per_s", "speedup", "compile_s", "graphs"])
    print(
        f"saved {save_results('compile', {'environment': env, 'shape': shape, 'rows': rows})}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
