"""What the checkpoint checksum costs: saving and loading a realistic training state with and without it.

python benchmarks/checkpoint_checksum.py                    # ~256 MB of state, 7 interleaved repeats
python benchmarks/checkpoint_checksum.py --megabytes 400 --repeats 7

The state is a checkpoint as Lightning writes it for a ~21M-parameter model trained with Adam: the
weights plus the optimizer's two moments (3 x 4 bytes per parameter), in 1M-element tensors. Variants, each
timed around the call (medians of interleaved repeats, in a temporary folder on the same disk):

- save, plain: ``write_atomically`` around ``torch.save`` (temporary file, fsync, rename): what litforge
  wrote before the checksum;
- save, checksummed: ``AtomicCheckpointIO.save_checkpoint`` (the same, then the SHA-256 seal of the
  records' CRC32s, which ``torch.save`` computes anyway, written into the zip comment);
- load, plain: ``torch.load(weights_only=True)``; verify: ``verify_checkpoint`` alone (checks the seal,
  recomputes every record's CRC32); load, checksummed: ``AtomicCheckpointIO.load_checkpoint`` (verify,
  then load).

The file was just written, so reads come from the page cache (as for a resume on the same machine soon
after a crash); from a cold disk both loads pay the same extra read. Writes
``benchmarks/results/checkpoint_checksum.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import environment, print_table, save_results

from litforge.atomic_files import write_atomically
from litforge.resilience.atomic_checkpoint_io import AtomicCheckpointIO
from litforge.resilience.checkpoint_checksum import verify_checkpoint

TENSOR_ELEMENTS = 1 << 20  # 4 MB of float32 per tensor


def training_state(megabytes: int) -> dict:
    """A Lightning-like checkpoint of about ``megabytes`` MB: weights and Adam's two moments."""
    layers = max(1, megabytes * (1 << 20) // (3 * 4 * TENSOR_ELEMENTS))
    generator = torch.Generator().manual_seed(0)
    weights = {f"layer{i}.weight": torch.randn(TENSOR_ELEMENTS, generator=generator) for i in range(layers)}
    moments = {
        i: {"step": torch.tensor(100.0), "exp_avg": torch.randn_like(w), "exp_avg_sq": torch.rand_like(w)}
        for i, w in enumerate(weights.values())
    }
    return {
        "epoch": 3,
        "global_step": 4000,
        "state_dict": weights,
        "optimizer_states": [{"state": moments, "param_groups": [{"lr": 1e-3, "params": list(moments)}]}],
        "loops": {},
    }


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=256, help="size of the training state")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    state = training_state(args.megabytes)
    io = AtomicCheckpointIO()
    times: dict[str, list[float]] = {
        k: [] for k in ("save_plain", "save_checksummed", "load_plain", "verify", "load_checksummed")
    }
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as folder:
        plain, checksummed = Path(folder) / "plain.ckpt", Path(folder) / "checksummed.ckpt"
        for _ in range(args.repeats):  # interleaved, so that machine load hits all variants alike
            times["save_plain"].append(timed(lambda: write_atomically(plain, lambda h: torch.save(state, h))))
            times["save_checksummed"].append(timed(lambda: io.save_checkpoint(state, checksummed)))
            times["load_plain"].append(
                timed(lambda: torch.load(plain, map_location="cpu", weights_only=True))
            )
            times["verify"].append(timed(lambda: verify_checkpoint(checksummed)))
            times["load_checksummed"].append(
                timed(lambda: io.load_checkpoint(checksummed, map_location="cpu"))
            )
        size_mb = checksummed.stat().st_size / 1e6

    median = {name: statistics.median(values) for name, values in times.items()}
    rows = [
        {
            "operation": operation,
            "plain (s)": median[f"{operation}_plain"],
            "checksummed (s)": median[f"{operation}_checksummed"],
            "overhead": f"{median[f'{operation}_checksummed'] / median[f'{operation}_plain'] - 1:+.1%}",
        }
        for operation in ("save", "load")
    ]
    print(f"checkpoint of {size_mb:.0f} MB, medians of {args.repeats} interleaved repeats")
    print_table(rows, ["operation", "plain (s)", "checksummed (s)", "overhead"])
    print(f"verify_checkpoint alone: {median['verify']:.3f} s ({size_mb / median['verify']:.0f} MB/s)")
    path = save_results(
        "checkpoint_checksum",
        {
            "environment": environment(),
            "load_average_1min": os.getloadavg()[0],
            "file_mb": round(size_mb, 1),
            "repeats": args.repeats,
            "median_s": median,
            "all_s": times,
            "save_overhead": median["save_checksummed"] / median["save_plain"] - 1,
            "load_overhead": median["load_checksummed"] / median["load_plain"] - 1,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
