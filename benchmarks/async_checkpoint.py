"""What a checkpoint save costs the training loop: synchronous, Lightning's ``AsyncCheckpointIO``, torch's
``distributed.checkpoint.async_save`` and litforge's ``BackgroundCheckpointIO``, each in a fresh process.

python benchmarks/async_checkpoint.py              # a 300 MB state (weights + AdamW moments), 3 saves each
python benchmarks/async_checkpoint.py --mb 100 --saves 5
python benchmarks/async_checkpoint.py --mb 1000 --device cuda   # the state on a GPU, as in training

Per save: ``blocked_s``, the time the caller waits (what training loses); ``background_s``, the time the
write goes on after that; ``work_s``, a fixed amount of matrix work run right after the save returns (while
a background write runs; on the state's device), against ``work_s_idle`` with no write in flight: what
the write costs the training that overlaps it. With ``--device cuda`` the state lives on the GPU: the
synchronous save and Lightning's thread copy it to the host inside ``torch.save``, Lightning first clones
it on the GPU, torch's stager copies it and synchronises the device, litforge queues copies into pinned
buffers. Writes benchmarks/results/async_checkpoint.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from _common import environment, print_table, run_variant, save_results, worker_or_shape
from lightning.pytorch.plugins.io import AsyncCheckpointIO, CheckpointIO
from torch.distributed.checkpoint.staging import DefaultStager, StagingOptions

from litforge._compat.torch import tree_leaves
from litforge.resilience import AtomicCheckpointIO
from litforge.resilience.async_checkpoint import BackgroundCheckpointIO

METHODS = (
    "sync (AtomicCheckpointIO)",
    "lightning AsyncCheckpointIO",
    "torch dcp.async_save",
    "litforge background",
)


def state(megabytes: int, device: str) -> dict[str, Any]:
    """A Lightning-like checkpoint on ``device``: weights, two AdamW moments per weight, metadata."""
    tensors = max(1, megabytes // 12)  # 4 MiB weight + 2 x 4 MiB moments per layer
    weights = {f"layer{i}.weight": torch.randn(1024, 1024, device=device) for i in range(tensors)}
    return {
        "state_dict": weights,
        "optimizer_states": [
            {
                "state": {i: {"exp_avg": torch.randn(1024, 1024, device=device), "exp_avg_sq": torch.rand(1024, 1024, device=device)} for i in range(tensors)},
                "param_groups": [{"lr": 1e-3, "params": list(range(tensors))}],
            }
        ],
        "global_step": 0,
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 0}}}},
    }  # fmt: skip


def work(device: str) -> float:
    """A fixed amount of matrix work on ``device`` (a stand-in for training steps); its duration."""
    size, rounds = (4096, 200) if device == "cuda" else (384, 150)
    a = torch.randn(size, size, device=device) / size**0.5
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(rounds):
        a = torch.tanh(a @ a)
    _synchronize(device)
    return time.perf_counter() - start


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class TimedAtomicIO(AtomicCheckpointIO):
    """litforge's ``AtomicCheckpointIO``, noting when each write is complete."""

    finished = 0.0

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        super().save_checkpoint(checkpoint, path, storage_options)
        self.finished = time.perf_counter()


class Saver:
    """One method: ``save`` returns when the caller may go on; ``done`` waits for the write and returns
    when it finished (``time.perf_counter()``)."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.timed = TimedAtomicIO()
        self._future: Future | None = None
        self._finished = 0.0
        if method.startswith("lightning"):
            self._io: CheckpointIO = AsyncCheckpointIO(self.timed)
        elif method.startswith("litforge"):
            self._io = BackgroundCheckpointIO(self.timed)
        else:
            self._io = self.timed
        self._stager = DefaultStager(StagingOptions(False, False, False, False))  # torch: cached CPU copies

    def save(self, checkpoint: dict[str, Any], path: Path) -> None:
        if self.method.startswith("torch"):
            self._future = dcp.async_save(
                checkpoint, checkpoint_id=str(path), no_dist=True, async_stager=self._stager
            )
            self._future.add_done_callback(lambda _: setattr(self, "_finished", time.perf_counter()))
        elif isinstance(self._io, BackgroundCheckpointIO):
            with self._io.in_background():
                self._io.save_checkpoint(checkpoint, path)
        else:
            self._io.save_checkpoint(checkpoint, path)

    def done(self) -> float:
        if self._future is not None:
            self._future.result()
            return self._finished
        if isinstance(self._io, BackgroundCheckpointIO):
            self._io.wait()
        elif isinstance(self._io, AsyncCheckpointIO):
            self._io.teardown()  # waits for its thread (the next save starts another)
        return self.timed.finished


def worker(config: dict[str, Any]) -> dict[str, Any]:
    torch.manual_seed(0)
    device = config["device"]
    checkpoint = state(config["mb"], device)
    megabytes = sum(t.numel() * t.element_size() for t in _tensors(checkpoint)) / 2**20
    saver = Saver(config["method"])
    idle = statistics.median(work(device) for _ in range(3))
    rows = []
    with tempfile.TemporaryDirectory(prefix="async-checkpoint-", dir=config["dir"]) as tmp:
        for index in range(config["saves"]):
            for tensor in _tensors(checkpoint):  # training changed the state since the last save
                tensor.add_(1e-3)
            _synchronize(device)
            start = time.perf_counter()
            saver.save(checkpoint, Path(tmp) / f"step-{index}.ckpt")
            returned = time.perf_counter()
            busy = work(device)
            finished = saver.done()
            rows.append(
                {"blocked_s": returned - start, "background_s": max(0.0, finished - returned), "work_s": busy}
            )
    return {
        "name": config["method"],
        "state_mb": megabytes,
        "blocked_s": statistics.median(r["blocked_s"] for r in rows),
        "background_s": statistics.median(r["background_s"] for r in rows),
        "work_s": statistics.median(r["work_s"] for r in rows),
        "work_s_idle": idle,
        "saves": rows,
    }  # fmt: skip


def _tensors(checkpoint: Any) -> list[torch.Tensor]:
    return [leaf for leaf in tree_leaves(checkpoint) if isinstance(leaf, torch.Tensor)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300, help="approximate state size in MB")
    parser.add_argument("--saves", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write (default: the system's temporary folder)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: benchmarks/results/async_checkpoint.json"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = worker_or_shape(parser.parse_args(), worker)
    if options is None:
        return
    env = environment()
    rows = [run_variant(__file__, {**options, "out": None, "method": method}) for method in METHODS]
    print(
        f"{env['device']}, torch {env['torch']}; {rows[0]['state_mb']:.0f} MB, {options['saves']} saves each"
    )
    print_table(rows, ["name", "blocked_s", "background_s", "work_s", "work_s_idle"])
    out = options.pop("out")
    record = {"environment": env, "options": options, "rows": rows}
    print(f"saved {save_results('async_checkpoint', record, path=out)}")


if __name__ == "__main__":
    main()
