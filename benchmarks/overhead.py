"""Whole-process wall time of the same training three ways: a hand-written PyTorch loop, a plain
Lightning ``Trainer`` and ``litforge fit``, plus a scaling table of ``litforge fit`` over data sizes.

python benchmarks/overhead.py                          # 60k samples, 2 epochs, 3 interleaved repeats
python benchmarks/overhead.py --repeats 5 --threads 1  # what docs/performance.md reports
python benchmarks/overhead.py --scaling 10000,60000,240000 --scaling-variants litforge,handwritten

Same model (MLP 784-256-10, Adam lr 1e-3, inputs standardised inside the model), same data
(``SyntheticDataModule``: N x 784, 10 classes, noise 20, seed 42, the same train/val split), batch 64, same epochs,
one validation pass per epoch. ``litforge fit`` uses Adam's fused kernel (the Classifier's default);
``litforge-unfused`` is ``litforge fit --model.fused false``, the per-parameter ``torch.optim.Adam`` that
the hand-written loop and plain Lightning use, to show what the optimizer alone is worth. Each run is a fresh process timed from start to exit; variants are
interleaved within each repeat so that machine load hits them alike; medians and ratios are reported,
with the final validation accuracy (macro average, as litforge logs it). Writes
``benchmarks/results/overhead.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import save_results

HERE = Path(__file__).resolve().parent
VARIANTS = ("handwritten", "lightning", "litforge", "litforge-unfused")  # the last: --model.fused false
FEATURES, CLASSES, HIDDEN, BATCH, LR, SEED = 784, 10, 256, 64, 1e-3, 42
NOISE = 20.0  # class overlap, so that accuracy is informative (noise 1 separates 784-d clusters perfectly)


# -- the three programs (each runs in its own process) -----------------------------------------------
def _data(samples: int):
    from litforge.data import SyntheticDataModule

    return SyntheticDataModule(
        num_samples=samples,
        num_features=FEATURES,
        num_classes=CLASSES,
        noise=NOISE,
        batch_size=BATCH,
        seed=SEED,
    )


def _net(data):
    import torch
    from torch import nn

    from litforge.models.classifier import Standardize

    torch.manual_seed(SEED)
    return nn.Sequential(
        Standardize(FEATURES, data.feature_mean, data.feature_std),
        nn.Linear(FEATURES, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, CLASSES),
    )


def _loaders(data):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    train = DataLoader(
        TensorDataset(data.train_x, data.train_y),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(SEED),
    )
    return train, DataLoader(TensorDataset(data.val_x, data.val_y), batch_size=BATCH)


def _macro_accuracy(predictions, labels) -> float:
    import torch

    hits = predictions == labels
    return torch.stack([hits[labels == c].float().mean() for c in labels.unique()]).mean().item()


def run_handwritten(samples: int, epochs: int, workdir: Path) -> float:
    import torch
    import torch.nn.functional as F

    data = _data(samples)
    net = _net(data)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    train, val = _loaders(data)
    accuracy = 0.0
    for _ in range(epochs):
        net.train()
        for x, y in train:
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            predictions = torch.cat([net(x).argmax(-1) for x, _ in val])
        accuracy = _macro_accuracy(predictions, data.val_y)
    return accuracy


def run_lightning(samples: int, epochs: int, workdir: Path) -> float:
    import lightning as L
    import torch
    import torch.nn.functional as F

    class Plain(L.LightningModule):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net
            self.predictions: list = []

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self.net(x)
            self.log("val_loss", F.cross_entropy(logits, y))
            self.predictions.append(logits.argmax(-1))

        def on_validation_epoch_start(self) -> None:
            self.predictions = []

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

    data = _data(samples)
    model = Plain(_net(data))
    train, val = _loaders(data)
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, default_root_dir=workdir, num_sanity_val_steps=0
    )
    trainer.fit(model, train, val)
    return _macro_accuracy(torch.cat(model.predictions), data.val_y)


def litforge_command(samples: int, epochs: int, workdir: Path) -> list[str]:
    return [
        sys.executable, "-m", "litforge", "fit",
        "--data", "SyntheticDataModule",
        "--data.num_samples", str(samples), "--data.num_features", str(FEATURES),
        "--data.num_classes", str(CLASSES), "--data.noise", str(NOISE),
        "--data.batch_size", str(BATCH), "--data.seed", str(SEED),
        "--model.hidden_dim", str(HIDDEN), "--model.hidden_layers", "1", "--model.dropout", "0",
        "--model.lr", str(LR), "--trainer.max_epochs", str(epochs), "--trainer.num_sanity_val_steps", "0",
        "--trainer.default_root_dir", str(workdir), "--run", "bench",
    ]  # fmt: skip


def litforge_accuracy(workdir: Path) -> float:
    (metrics,) = workdir.glob("*/bench/metrics.csv")
    with metrics.open(newline="") as handle:
        return [float(row["val_acc"]) for row in csv.DictReader(handle) if row.get("val_acc")][-1]


# -- the driver --------------------------------------------------------------------------------------
def time_one(variant: str, samples: int, epochs: int, env: dict[str, str]) -> dict[str, float]:
    """Run one variant in a fresh process; wall time from spawn to exit, and its final accuracy."""
    with tempfile.TemporaryDirectory(prefix=f"overhead-{variant}-") as tmp:
        workdir = Path(tmp)
        if variant.startswith("litforge"):
            command = litforge_command(samples, epochs, workdir)
            command += ["--model.fused", "false"] if variant == "litforge-unfused" else []
        else:
            command = [sys.executable, __file__, "--child", variant, "--samples", str(samples)]
            command += ["--epochs", str(epochs), "--workdir", str(workdir)]
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=workdir)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(
                f"{variant} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            )
        if variant.startswith("litforge"):
            accuracy = litforge_accuracy(workdir)
            perf = json.loads(next(workdir.glob("*/bench/perf.json")).read_text())
            return {"wall_s": wall, "val_acc": accuracy, "train_s": perf["train_s"]}
        return {"wall_s": wall, "val_acc": json.loads((workdir / "result.json").read_text())["val_acc"]}


def paired_ratio(table: dict, variant: str, reference: str) -> float:
    """The median over repeats of ``variant``'s wall time over ``reference``'s in the same repeat: the
    variants of one repeat run back to back, so a slow spell of this shared VM hits both of a pair."""
    pairs = zip(table[variant]["wall_s_all"], table[reference]["wall_s_all"], strict=True)
    return statistics.median(mine / theirs for mine, theirs in pairs)


def measure(variants: list[str], samples: int, epochs: int, repeats: int, env: dict[str, str]) -> dict:
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for repeat in range(repeats):
        order = variants[repeat % len(variants) :] + variants[: repeat % len(variants)]  # rotate the order
        for variant in order:
            runs[variant].append(time_one(variant, samples, epochs, env))
            print(
                f"  n={samples} repeat {repeat + 1}/{repeats} {variant}: {runs[variant][-1]['wall_s']:.1f} s",
                flush=True,
            )
    return {
        v: {
            "wall_s_median": statistics.median(r["wall_s"] for r in runs[v]),
            "wall_s_all": [r["wall_s"] for r in runs[v]],
            "val_acc_median": statistics.median(r["val_acc"] for r in runs[v]),
            **(
                {"train_s_median": statistics.median(r["train_s"] for r in runs[v])}
                if "train_s" in runs[v][0]
                else {}
            ),
        }
        for v in variants
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="OMP_NUM_THREADS for every run (default: inherit)"
    )
    parser.add_argument("--scaling", default="10000,60000,240000", help="sample counts; '' skips the table")
    parser.add_argument("--scaling-variants", default="litforge")
    parser.add_argument("--scaling-repeats", type=int, default=1)
    parser.add_argument("--scaling-epochs", type=int, default=1)
    parser.add_argument("--child", choices=("handwritten", "lightning"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        runner = run_handwritten if args.child == "handwritten" else run_lightning
        accuracy = runner(args.samples, args.epochs, args.workdir)
        (args.workdir / "result.json").write_text(json.dumps({"val_acc": accuracy}))
        return

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print(f"overhead: {args.samples} samples, {args.epochs} epochs, {args.repeats} interleaved repeats")
    main_table = measure(list(VARIANTS), args.samples, args.epochs, args.repeats, env)
    scaling_sizes = [int(s) for s in args.scaling.split(",") if s]
    scaling_variants = [v for v in args.scaling_variants.split(",") if v]
    scaling = {
        n: measure(scaling_variants, n, args.scaling_epochs, args.scaling_repeats, env) for n in scaling_sizes
    }

    base = main_table["handwritten"]["wall_s_median"]
    print(
        f"\n{'variant':<12} {'wall s (median)':>16} {'x hand-written':>15} {'x Lightning':>12} {'val acc':>8}"
    )
    for variant, row in main_table.items():
        print(
            f"{variant:<15} {row['wall_s_median']:>16.2f} {row['wall_s_median'] / base:>15.2f} "
            f"{row['wall_s_median'] / main_table['lightning']['wall_s_median']:>12.2f} {row['val_acc_median']:>8.4f}"
        )
    paired = {
        "litforge_vs_handwritten": paired_ratio(main_table, "litforge", "handwritten"),
        "litforge_vs_lightning": paired_ratio(main_table, "litforge", "lightning"),
    }
    print("median of the per-repeat ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in paired.items()))
    if scaling:
        print(
            f"\n{'samples':>8} "
            + " ".join(f"{v + ' wall s':>20}" for v in scaling_variants)
            + f" {'litforge train s':>17} {'us/sample':>10}"
        )
        for n, rows in scaling.items():
            lit = rows.get("litforge", {})
            per_sample = (
                lit["train_s_median"] / (n * 0.7 * args.scaling_epochs) * 1e6 if lit else float("nan")
            )
            walls = " ".join(f"{rows[v]['wall_s_median']:>20.2f}" for v in scaling_variants)
            print(f"{n:>8} {walls} {lit.get('train_s_median', float('nan')):>17.2f} {per_sample:>10.1f}")

    record = {
        "samples": args.samples,
        "epochs": args.epochs,
        "scaling_epochs": args.scaling_epochs,
        "repeats": args.repeats,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "variants": main_table,
        "ratios": {
            "litforge_vs_handwritten": main_table["litforge"]["wall_s_median"] / base,
            "litforge_vs_lightning": main_table["litforge"]["wall_s_median"]
            / main_table["lightning"]["wall_s_median"],
            "lightning_vs_handwritten": main_table["lightning"]["wall_s_median"] / base,
        },
        "paired_ratios": paired,
        "scaling": {str(n): rows for n, rows in scaling.items()},
    }
    print(f"\nsaved {save_results('overhead', record)}")


if __name__ == "__main__":
    main()
