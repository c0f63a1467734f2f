"""Batch inference from an export folder: ``litforge predict --artifact DIR --input FILE [--output FILE]``.

litforge predict --artifact runs/classifier/version_0/export --input digits.csv
litforge predict --artifact exports/digits --input rows.npy --output preds.csv --format pt2

Input: a CSV of numbers (one row per sample, header optional) or a ``.npy`` of rows; the artifact's raw
feature layout (``export.json`` -> inputs). Output: the CSV columns ``litforge predict`` writes from a
checkpoint for the model's output head (``litforge.predictions.csv_columns``). No training code and no checkpoint
are needed: only the export folder.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from litforge.atomic_files import atomic_path
from litforge.errors import UsageError
from litforge.export.artifact import Artifact
from litforge.export.input_values import check_integer_rows
from litforge.predictions import csv_columns
from litforge.predictions.output_head import Predictions

CHUNK_ROWS = 4096


def predict_file(
    artifact_dir: Path, input_path: Path, output: Path | None = None, fmt: str | None = None
) -> tuple[int, str, Path]:
    """Predict every row of ``input_path`` with the artifact and write the CSV atomically.

    Returns the number of rows, the artifact format used and the CSV written (default:
    ``<input>.predictions.csv``).
    """
    artifact = Artifact.open(artifact_dir, fmt)
    if artifact.request_format != "features":
        raise UsageError(
            f"{artifact_dir} takes {artifact.request_format}; batch prediction reads numeric rows"
        )
    output = output or input_path.with_name(f"{input_path.stem}.predictions.csv")
    if output.resolve() == input_path.resolve() or (output.exists() and output.samefile(input_path)):
        raise UsageError(f"--output: {output} is the --input file; refusing to overwrite it")
    if (
        output.exists()
        and output.suffix != ".csv"
        and output.resolve().is_relative_to(artifact_dir.resolve())
    ):
        raise UsageError(
            f"--output: {output} is a file of the export folder {artifact_dir}; refusing to overwrite it"
        )
    rows = read_rows(input_path, artifact.row_shape)
    if (bounds := artifact.integer_bounds) is not None:
        rows = check_integer_rows(rows, bounds, str(input_path))
    chunks = [artifact.predict(rows[start : start + CHUNK_ROWS]) for start in range(0, len(rows), CHUNK_ROWS)]
    write_predictions(output, Predictions.concatenate(chunks), artifact.class_labels)
    return len(rows), artifact.format, output


_ROW_FILES = {".npy", ".csv", ".txt", ""}  # "" : a file without a suffix, read as CSV


def read_rows(path: Path, row_shape: tuple[int, ...]) -> np.ndarray:
    """A CSV or ``.npy`` file -> float64 array (N, *row_shape) (the artifact casts to its input dtype); ``UsageError`` naming the file and the
    line (CSV) or row (``.npy``) that is wrong."""
    if not path.is_file():
        raise UsageError(f"--input: no such file: {path}")
    if path.suffix.lower() not in _ROW_FILES:
        raise UsageError(
            f"--input: {path} is not a CSV or .npy file (it reads {', '.join(sorted(_ROW_FILES - {''}))}); "
            "JSON requests go to `litforge serve`"
        )
    width = math.prod(row_shape)
    rows = _read_npy(path, row_shape) if path.suffix == ".npy" else _read_csv(path, width)
    return rows.astype(np.float64).reshape(len(rows), *row_shape)


def _read_npy(path: Path, row_shape: tuple[int, ...]) -> np.ndarray:
    """An array (N, values per row) or (N, *row_shape) -> (N, values per row)."""
    width = math.prod(row_shape)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UsageError(f"--input: cannot read {path} as .npy: {err}") from None
    if not np.issubdtype(array.dtype, np.number):
        raise UsageError(f"--input: {path} holds {array.dtype}, not numbers")
    if array.ndim < 2 or array.shape[1:] not in ((width,), row_shape):
        shapes = " or ".join(dict.fromkeys(f"(N, {', '.join(map(str, s))})" for s in ((width,), row_shape)))
        raise UsageError(f"--input: {path} holds an array of shape {array.shape}; the model takes {shapes}")
    rows = array.reshape(len(array), width)
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        raise UsageError(f"--input: row {int(np.argmin(finite))} of {path} has NaN or infinite values")
    return rows


def _read_csv(path: Path, width: int) -> np.ndarray:
    """Rows of ``width`` finite numbers, after an optional header line."""
    rows: list[list[float]] = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        for index, cells in enumerate(filter(None, reader)):
            line = f"line {reader.line_num} of {path}"
            bad = next((cell for cell in cells if not _is_number(cell)), None)
            if bad is not None and index == 0:
                continue  # a header
            if bad is not None:
                raise UsageError(f"--input: {line} has a non-numeric value {bad!r}")
            if len(cells) != width:
                raise UsageError(f"--input: {line} has {len(cells)} values; the model takes {width}")
            values = [float(cell) for cell in cells]
            if not all(map(math.isfinite, values)):
                raise UsageError(f"--input: {line} has NaN or infinite values")
            rows.append(values)
    if not rows:
        raise UsageError(f"--input: {path} has no data rows")
    return np.array(rows, dtype=np.float64)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def write_predictions(path: Path, predictions: Predictions, labels: list[str] | None) -> None:
    """The ``litforge.predictions.csv_columns`` columns (as ``litforge predict`` writes from a checkpoint),
    written atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(csv_columns.header(predictions, labels))
        writer.writerows(csv_columns.rows(predictions, labels))
