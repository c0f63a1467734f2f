"""A CSV logger that keeps a resumed run's earlier rows in ``metrics.csv``.

litforge fit --run my-run --resume auto    # metrics.csv: the rows before the crash, then the new ones

Lightning's ``CSVLogger`` deletes the ``metrics.csv`` it finds in its folder, so a resumed run used to
lose every row logged before the crash (and its learning-curve plot with them). ``ResumableCSVLogger``
keeps the file; ``litforge.resilience.logger_resume.KeepEarlierMetrics``, when training starts from a checkpoint
of global step S, drops the earlier rows of steps S and later (those steps are trained, and logged, again). A fit that does not
resume drops them all, as Lightning does. A kill at any moment leaves the rows in ``metrics.csv`` (or,
for the instant Lightning's writer is created, in ``metrics.csv.kept``, which the next run takes back).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import CSVLogger

from litforge._compat.lightning import logger_experiment
from litforge.atomic_files import write_atomically

METRICS_FILE = "metrics.csv"


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` that keeps the ``metrics.csv`` it finds until ``keep_rows_before`` trims it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._earlier_rows = 0  # rows at the top of metrics.csv that an earlier run logged

    @property
    def experiment(self) -> Any:
        if logger_experiment(self) is not None or rank_zero_only.rank != 0:
            return super().experiment
        path = Path(self.log_dir) / METRICS_FILE
        kept = path.with_name(f"{METRICS_FILE}.kept")
        if kept.is_file() and not path.is_file():
            os.replace(kept, path)  # killed while the writer below was created
        if not path.is_file():
            return super().experiment
        os.replace(path, kept)  # out of the way of the writer, which deletes it
        try:
            writer = super().experiment
        finally:
            os.replace(kept, path)
        rows = _read(path)
        self._earlier_rows = len(rows)
        # Lightning's writer appends under the header it knows, and rewrites the file when keys are new.
        writer.metrics_keys = _header(rows)
        return writer

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Log and write the row at once (Lightning buffers up to 100 steps): a checkpoint saved later
        then never lacks rows of the steps before it after a kill."""
        super().log_metrics(metrics, step)
        self.save()

    def keep_rows_before(self, step: int) -> None:
        """Drop the earlier run's rows of ``step`` and later; the rows logged since stay."""
        if not self._earlier_rows:
            return
        path = Path(self.log_dir) / METRICS_FILE  # holds every row so far: log_metrics writes at once
        rows = _read(path)
        earlier, since = rows[: self._earlier_rows], rows[self._earlier_rows :]
        rows = [row for row in earlier if row.get("step") and int(row["step"]) < step] + since
        self._earlier_rows = 0
        header = _header(rows)
        if rows:
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
            data = text.getvalue().encode()
            write_atomically(path, lambda handle: handle.write(data))
        else:  # nothing to keep: the writer starts a new file
            path.unlink()
        self.experiment.metrics_keys = header


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _header(rows: list[dict[str, str]]) -> list[str]:
    return sorted(set().union(*rows))
