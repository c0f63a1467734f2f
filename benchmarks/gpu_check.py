"""GPU checks of ``litforge fit`` on one CUDA device: precisions, the fast path, host syncs per step.

python benchmarks/gpu_check.py            # on a machine with a GPU; writes benchmarks/results/gpu_check.json

Trains the packaged digits default for 10 epochs in 32-true, bf16-mixed and 16-mixed, then the overhead
benchmark's synthetic MLP (60,000 x 784, batch 64, 2 epochs) in 32-true and bf16-mixed, with
``--data.prefetch_to_device true``, and once more while counting the CUDA host syncs of training steps
10-19 (``torch.cuda.set_sync_debug_mode``) and where in Python they happen.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import lightning as L
import torch

from litforge.engine import runtime
from litforge.engine.api import run_command

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_check.json"
PERF_KEYS = ("train_steps_per_s", "step_time_p50_ms", "step_time_p95_ms", "data_wait_share")
SYNTHETIC = [
    "--data", "SyntheticDataModule", "--data.num_samples", "60000", "--data.num_features", "784",
    "--data.num_classes", "10", "--data.noise", "20", "--data.batch_size", "64",
    "--model.hidden_dim", "256", "--model.hidden_layers", "1", "--model.dropout", "0",
    "--trainer.max_epochs", "2", "--trainer.num_sanity_val_steps", "0",
]  # fmt: skip


class SyncCounter(L.Callback):
    """Counts the CUDA host syncs of training steps 10-19 of the first epoch, by Python call site."""

    def __init__(self) -> None:
        self.sites: Counter[str] = Counter()
        self.steps = 0
        self._shown: object = None

    def _record(self, message: object, *args: object, **kwargs: object) -> None:
        if "synchroniz" in str(message):
            frames = [f for f in traceback.extract_stack()[:-2] if "/torch/" not in f.filename]
            site = frames[-1]
            self.sites[f"{site.filename.rsplit('/', 3)[-1]}:{site.lineno} {site.name}"] += 1

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx
    ) -> None:
        if trainer.current_epoch == 0 and batch_idx == 10:
            self._shown, warnings.showwarning = warnings.showwarning, self._record
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        if self._shown is not None:
            self.steps += 1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx
    ) -> None:
        if self._shown is not None and batch_idx == 19:
            torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning, self._shown = self._shown, None


def fit(name: str, args: list[str], callbacks: tuple[L.Callback, ...] = ()) -> dict:
    """One ``litforge fit`` on the GPU; wall time, final val_acc and perf.json's step figures."""
    root = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    gpu = ["--trainer.accelerator", "gpu", "--trainer.devices", "1", "--trainer.enable_progress_bar", "false"]
    run_command(
        ["fit", *gpu, "--trainer.default_root_dir", str(root), "--run", name, *args],
        extra_callbacks=list(callbacks),
    )
    run = next(root.glob(f"*/{name}"))
    perf = json.loads((run / "perf.json").read_text())
    with (run / "metrics.csv").open() as handle:
        epochs = [row for row in csv.DictReader(handle) if row.get("val_acc")]
    row = {
        "wall_s": round(time.perf_counter() - start, 2),
        "epochs": len(epochs),
        "val_acc": round(float(epochs[-1]["val_acc"]), 4),
        **{key: round(perf[key], 3) for key in PERF_KEYS},
        "peak_gpu_allocated_mib": round(perf["peak_gpu_allocated_mib"], 1),
    }
    print(name, row, flush=True)
    return row


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("gpu_check.py needs a CUDA device")
    runtime.install()
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    results: dict = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "lightning": L.__version__,
    }
    for precision in ("32-true", "bf16-mixed", "16-mixed"):
        args = ["--trainer.precision", precision, "--trainer.max_epochs", "10"]
        results[f"digits-{precision}"] = fit(f"digits-{precision}", args)
    for precision in ("32-true", "bf16-mixed"):
        results[f"synthetic-{precision}"] = fit(
            f"synthetic-{precision}", [*SYNTHETIC, "--trainer.precision", precision]
        )
    results["synthetic-prefetch"] = fit(
        "synthetic-prefetch", [*SYNTHETIC, "--data.prefetch_to_device", "true"]
    )
    counter = SyncCounter()
    results["synthetic-counted"] = fit("synthetic-counted", SYNTHETIC, (counter,))
    results["host_syncs"] = {"steps": counter.steps, "sites": dict(counter.sites)}
    print("host syncs in", counter.steps, "training steps:", dict(counter.sites), flush=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
