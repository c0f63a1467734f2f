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
from litforge.export.input_values import first_bad_id, value_problem
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
    rows = read_rows(input_path, artifact.row_shape, artifact.integer_bounds)
    chunks = [artifact.predict(rows[start : start + CHUNK_ROWS]) for start in range(0, len(rows), CHUNK_ROWS)]
    write_predictions(output, Predictions.concatenate(chunks), artifact.class_labels)
    return len(rows), artifact.format, output


_ROW_FILES = {".npy", ".csv", ".txt", ""}  # "" : a file without a suffix, read as CSV


def read_rows(path: Path, row_shape: tuple[int, ...], ids: tuple[int, int] | None = None) -> np.ndarray:
    """A CSV or ``.npy`` file -> array (N, *row_shape): float64, or int64 for an integer input whose values
    must lie in ``ids`` (lowest, highest); ``UsageError`` naming the file and the line (CSV) or row
    (``.npy``, counted from 0) that is wrong."""
    if not path.is_file():
        raise UsageError(f"--input: no such file: {path}")
    if path.suffix.lower() not in _ROW_FILES:
        raise UsageError(
            f"--input: {path} is not a CSV or .npy file (it reads {', '.join(sorted(_ROW_FILES - {''}))}); "
            "JSON requests go to `litforge serve`"
        )
    width = math.prod(row_shape)
    rows = _read_npy(path, row_shape, ids) if path.suffix == ".npy" else _read_csv(path, width, ids)
    return rows.astype(np.int64 if ids else np.float64).reshape(len(rows), *row_shape)


def _read_npy(path: Path, row_shape: tuple[int, ...], ids: tuple[int, int] | None) -> np.ndarray:
    """An array (N, values per row) or (N, *row_shape) -> (N, values per row)."""
    width = math.prod(row_shape)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UsageError(f"--input: cannot read {path} as .npy: {err}") from None
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise UsageError(f"--input: {path} holds {array.dtype}, not real numbers")
    if array.ndim < 2 or array.shape[1:] not in ((width,), row_shape):
        shapes = " or ".join(dict.fromkeys(f"(N, {', '.join(map(str, s))})" for s in ((width,), row_shape)))
        raise UsageError(f"--input: {path} holds an array of shape {array.shape}; the model takes {shapes}")
    rows = array.reshape(len(array), width)
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        raise UsageError(f"--input: row {int(np.argmin(finite))} of {path} has NaN or infinite values")
    if ids is not None and (bad := first_bad_id(rows, ids)) is not None:
        raise UsageError(f"--input: row {bad[0]} of {path}: {bad[1]}")
    return rows


def _read_csv(path: Path, width: int, ids: tuple[int, int] | None) -> np.ndarray:
    """Rows of ``width`` finite numbers (whole numbers within ``ids`` for an integer input), after an optional
    header line: a first line none of whose cells is a number. A BOM (Excel's "CSV UTF-8") is skipped."""
    rows: list[list[float | int]] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for index, cells in enumerate(filter(None, reader)):
            line = f"line {reader.line_num} of {path}"
            if index == 0 and not any(map(_is_number, cells)):
                continue  # a header
            bad = next((cell for cell in cells if not _is_number(cell)), None)
            if bad is not None:
                raise UsageError(f"--input: {line} has a non-numeric value {bad!r}")
            if len(cells) != width:
                raise UsageError(f"--input: {line} has {len(cells)} values; the model takes {width}")
            values = [_number(cell) for cell in cells]
            if not all(map(math.isfinite, values)):
                raise UsageError(f"--input: {line} has NaN or infinite values")
            if ids is not None and (
                problem := next(filter(None, (value_problem(v, ids) for v in values)), None)
            ):
                raise UsageError(f"--input: {line}: {problem}")
            rows.append(values)
    if not rows:
        raise UsageError(f"--input: {path} has no data rows")
    return np.array(rows, dtype=np.int64 if ids else np.float64)


def _number(cell: str) -> float | int:
    """A CSV cell as Python reads it: an int when it is written as one (exact beyond 2**53), else a float."""
    try:
        return int(cell)
    except ValueError:
        return float(cell)


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
