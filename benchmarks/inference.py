"""Eager PyTorch vs TorchScript vs torch.export (.pt2) vs ONNX Runtime on the digits MLP.

python benchmarks/inference.py                 # trains a digits model, exports it, measures
python benchmarks/inference.py --ckpt runs/classifier/version_0/checkpoints/best.ckpt --threads 1

Batch-1 latency (median of up to --repeats calls) and batch-256 throughput; loops are bounded by a
repeat count and a time budget. Writes benchmarks/results/inference.json. Target: ONNX Runtime
batch-1 latency >= 2.5x faster than eager.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from litforge.export.artifact import Artifact
from litforge.export.loading import load_checkpoint
from litforge.export.parity import eager_outputs, random_inputs
from litforge.export.spec import export_spec
from litforge.export.timing import measure

RESULTS = Path(__file__).resolve().parent / "results" / "inference.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint to export (default: train one)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for every runtime")
    parser.add_argument("--repeats", type=int, default=2000, help="batch-1 calls per runtime (bounded)")
    parser.add_argument("--budget-s", type=float, default=5.0, help="time budget per measurement")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from _digits_export import digits_export

    with tempfile.TemporaryDirectory() as tmp:
        folder = digits_export(Path(tmp), args.ckpt)
        record = json.loads((folder / "export.json").read_text())
        module = load_checkpoint(Path(record["source"]["checkpoint"])).module
        spec = export_spec(module)
        one = [t.numpy() for t in random_inputs(spec, 1, torch.rand(8, 64) * 16)]
        big = [t.numpy() for t in random_inputs(spec, 256, torch.rand(8, 64) * 16)]

        def eager(*arrays: np.ndarray) -> np.ndarray:
            return eager_outputs(module, tuple(torch.from_numpy(a) for a in arrays))

        runners = {"eager": eager}
        for name in ("torchscript", "pt2", "onnx"):
            runners[name] = Artifact.open(folder, name, threads=args.threads).runner
        results = {name: measure(run, one, big, args.repeats, args.budget_s) for name, run in runners.items()}

    base = results["eager"]["latency_ms_batch1"]
    print(
        f"{'runtime':<12} {'batch-1 ms (median)':>20} {'p90 ms':>8} {'batch-256 rows/s':>17} {'vs eager':>9}"
    )
    for name, figures in results.items():
        figures["speedup_batch1_vs_eager"] = base / figures["latency_ms_batch1"]
        print(
            f"{name:<12} {figures['latency_ms_batch1']:>20.4f} {figures['latency_ms_batch1_p90']:>8.4f}"
            f" {figures['throughput_rows_per_s']:>17.0f} {figures['speedup_batch1_vs_eager']:>8.2f}x"
        )
    target = results["onnx"]["speedup_batch1_vs_eager"] >= 2.5
    print(f"target ONNX Runtime batch-1 >= 2.5x eager: {'met' if target else 'NOT met'}")
    payload = {
        "model": "digits MLP (64 -> 128 -> 128 -> 10, normalisation in graph)",
        "threads": args.threads or torch.get_num_threads(),
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "versions": record["versions"],
        "results": results,
        "target_onnx_2_5x_met": target,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
