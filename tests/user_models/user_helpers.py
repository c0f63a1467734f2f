"""Shared by the user-model tests (a plain module: conftest files are not imported by name)."""

from __future__ import annotations

import csv
from pathlib import Path

USERMODS = Path(__file__).with_name("usermods.py")
# Short runs for user modules: CPU, a few batches, no summary table.
QUICK = [
    "--trainer.max_epochs", "2",
    "--trainer.limit_train_batches", "4",
    "--trainer.accelerator", "cpu",
    "--trainer.enable_model_summary", "false",
    "--trainer.log_every_n_steps", "1",
]  # fmt: skip


def csv_rows(path: Path) -> list[dict[str, str]]:
    """A CSV file written by litforge (predictions.csv) as one dict per row."""
    with path.open() as handle:
        return list(csv.DictReader(handle))
