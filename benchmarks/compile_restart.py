"""Restart-to-first-step of a compiled SequenceTransformer: what a resumed run pays for compilation again,
with torch's machine-local compile cache, without it, and with portable cache artifacts
(``torch.compiler.save_cache_artifacts()`` / ``load_cache_artifacts()``) carried to a fresh machine.

python benchmarks/compile_restart.py
python benchmarks/compile_restart.py --d-model 768 --n-layers 12 --n-heads 12 --seq-len 1024 --batch-size 16

Each variant is a fresh process with its own ``TORCHINDUCTOR_CACHE_DIR``: ``first run`` compiles into an
empty cache and saves the portable artifacts; ``restart, same machine`` reuses its cache folder (what a
``litforge fit --resume auto`` on the same machine gets by default); ``restart, new machine`` starts from
an empty folder (a preempted job rescheduled elsewhere); ``... + artifacts`` does the same after loading
the first run's artifacts. ``first_step_s`` is model build + compile + the first optimizer step,
``process_s`` the worker from its first line (imports included) to the end of that step. Writes benchmarks/results/compile_restart.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    environment,
    print_table,
    run_variant,
    save_results,
    seeded_transformer,
    transformer_args,
    worker_or_shape,
)

PROCESS_START = time.perf_counter()  # the worker's first line: imports count


def worker(config: dict[str, Any]) -> dict[str, Any]:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = config["cache_dir"]  # before torch reads its config
    import torch
    import torch.nn.functional as F

    artifacts = Path(config["artifacts"])
    if config["load_artifacts"]:
        torch.compiler.load_cache_artifacts(artifacts.read_bytes())
    start = time.perf_counter()
    model = seeded_transformer(config, compile=True)
    model.configure_model()
    optimizer = model.configure_optimizers()
    tokens = torch.randint(0, config["vocab"], (config["batch_size"], config["seq_len"]))
    logits = model(tokens)
    F.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
    optimizer.step()
    first_step = time.perf_counter() - start
    saved_bytes = None
    if config["save_artifacts"]:
        saved = torch.compiler.save_cache_artifacts()
        if saved is not None:
            artifacts.write_bytes(saved[0])
            saved_bytes = len(saved[0])
    return {
        "name": config["name"],
        "first_step_s": first_step,
        "process_s": time.perf_counter() - PROCESS_START,
        "artifacts_bytes": saved_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    transformer_args(parser, seq_len=128, n_layers=4)
    parser.add_argument(
        "--out", type=Path, help="results file (default benchmarks/results/compile_restart.json)"
    )
    shape = worker_or_shape(parser.parse_args(), worker)
    if shape is None:
        return
    out = shape.pop("out")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        artifacts = str(root / "compile_artifacts.bin")
        variants = [  # (name, cache folder, load the artifacts, save them)
            ("first run (empty cache)", "machine-a", False, True),
            ("restart, same machine", "machine-a", False, False),
            ("restart, new machine", "machine-b", False, False),
            ("restart, new machine + artifacts", "machine-c", True, False),
        ]
        rows = []
        for name, cache, load, save in variants:
            variant = {
                **shape,
                "name": name,
                "cache_dir": str(root / cache),
                "artifacts": artifacts,
                "load_artifacts": load,
                "save_artifacts": save,
            }
            rows.append(run_variant(__file__, variant))
            print(f"{name}: first step {rows[-1]['first_step_s']:.1f} s", flush=True)
    print_table(rows, ["name", "first_step_s", "process_s", "artifacts_bytes"])
    path = save_results("compile_restart", {"environment": environment(), "shape": shape, "rows": rows}, out)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
