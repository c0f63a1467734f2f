"""Draws ``learning_curves.png`` in the run folder at the end of ``fit``, from the CSV logger's metrics."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger


class LearningCurves(Callback):
    """One panel per metric family (loss, acc, ...), train and validation curves per epoch."""

    def __init__(self, filename: str = "learning_curves.png") -> None:
        self.filename = filename

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        csv_logger = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if csv_logger is None:
            return
        log_dir = trainer.log_dir  # a collective call under DDP: every rank must make it
        if not trainer.is_global_zero:
            return
        csv_logger.save()
        metrics_file = Path(csv_logger.log_dir) / "metrics.csv"
        if metrics_file.is_file():
            plot_learning_curves(metrics_file, Path(log_dir or csv_logger.log_dir) / self.filename)


def plot_learning_curves(metrics_csv: Path, output: Path) -> Path | None:
    """Plot every ``*_epoch``/``val_*`` metric of a Lightning ``metrics.csv`` against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    series: dict[str, dict[int, float]] = defaultdict(dict)
    with metrics_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            for key, value in row.items():
                if value and key not in {"epoch", "step"} and not key.endswith("_step"):
                    series[key.removesuffix("_epoch")][int(float(row["epoch"]))] = float(value)
    families: dict[str, list[str]] = defaultdict(list)
    for name in sorted(series):
        families[metric_family(name)].append(name)
    if not families:
        return None
    width = 5.0 * len(families)
    fig, axes = plt.subplots(1, len(families), figsize=(width, 3.5), squeeze=False)
    # Fixed margins in inches instead of tight_layout(), which measured a third of the plot's time.
    fig.subplots_adjust(
        left=0.7 / width, right=1 - 0.2 / width, bottom=0.55 / 3.5, top=1 - 0.35 / 3.5, wspace=0.3
    )
    for ax, (family, names) in zip(axes[0], families.items(), strict=True):
        for name in names:
            epochs = sorted(series[name])
            ax.plot([e + 1 for e in epochs], [series[name][e] for e in epochs], marker="o", label=name)
        ax.set_title(family)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        ax.legend()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def metric_family(name: str) -> str:
    """The panel a metric is plotted on: its name less a stage and a loader (``train_loss``, ``val/loss``,
    ``loss/val`` and ``val/loss/dataloader_idx_1`` are all ``loss``); other names stand as they are
    (``lr-Adam``)."""
    name = re.sub(r"/dataloader_idx_\d+$", "", name)
    parts = re.split(r"[_/]", name)
    if len(parts) > 1 and parts[0] in STAGES:
        return name[len(parts[0]) + 1 :]
    if len(parts) > 1 and parts[-1] in STAGES:
        return name[: -len(parts[-1]) - 1]
    return name


STAGES = ("train", "val", "valid", "validation", "test")
