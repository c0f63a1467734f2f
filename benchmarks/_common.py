"""Shared by the benchmark scripts: one fresh process per variant, a printed table, JSON results."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def run_variant(script: str, variant: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run ``script --worker '<variant json>'`` in a fresh interpreter; return the JSON it prints last."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_src(), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, script, "--worker", json.dumps(variant)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        raise SystemExit(f"variant {variant.get('name')} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def transformer_args(parser: argparse.ArgumentParser, *, seq_len: int, n_layers: int) -> None:
    """The SequenceTransformer shape options (and the hidden ``--worker``) the transformer benchmarks share."""
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=seq_len)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--n-layers", type=int, default=n_layers)
    parser.add_argument("--vocab", type=int, default=16)
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def worker_or_shape(
    args: argparse.Namespace, worker: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any] | None:
    """In a ``--worker`` process run ``worker`` and print its JSON (returns None); else the shape options."""
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return None
    return {k: v for k, v in vars(args).items() if k != "worker"}


def fabric_transformer(config: dict[str, Any], **model_kwargs: Any) -> tuple[Any, Any]:
    """A one-device Fabric at ``config["precision"]`` and a seeded SequenceTransformer of ``config``'s shape."""
    import lightning as L
    import torch

    accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    fabric = L.Fabric(accelerator=accelerator, devices=1, precision=config["precision"])
    return fabric, seeded_transformer(config, **model_kwargs)


def seeded_transformer(config: dict[str, Any], **model_kwargs: Any) -> Any:
    """A SequenceTransformer of ``config``'s shape, its weights drawn after ``torch.manual_seed(0)``."""
    import torch

    from litforge.models import SequenceTransformer

    torch.manual_seed(0)
    return SequenceTransformer(
        num_classes=config["vocab"],
        max_len=config["seq_len"],
        d_model=config["d_model"],
        n_heads=config["n_heads"],
        n_layers=config["n_layers"],
        **model_kwargs,
    )


def environment() -> dict[str, Any]:
    """Where the figures come from (device, torch version, CPU threads)."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name(0)
        if cuda
        else f"cpu ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cuda": cuda,
    }


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A Markdown table (pastes into the docs as is)."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")


def save_results(name: str, payload: dict[str, Any], path: Path | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` (or ``path``) atomically."""
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)


def _src() -> str:
    return str(Path(__file__).resolve().parent.parent / "src")
