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
from litforge.export.row_shape import RowShape, concrete, takes
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
    groups = read_rows(input_path, artifact.row_shape, artifact.integer_bounds)
    outputs = [
        artifact.outputs(rows[start : start + CHUNK_ROWS])
        for _, rows in groups
        for start in range(0, len(rows), CHUNK_ROWS)
    ]
    if len({output.shape[1:] for output in outputs}) > 1:
        raise UsageError(
            f"--input: the rows of {input_path} have {len(groups)} lengths and the model's outputs differ in "
            "shape with the length; predict rows of one length per file"
        )
    in_file_order = np.argsort(np.concatenate([lines for lines, _ in groups]), kind="stable")
    predictions = artifact.postprocess(np.concatenate(outputs)[in_file_order])
    write_predictions(output, predictions, artifact.class_labels)
    return len(in_file_order), artifact.format, output


_ROW_FILES = {".npy", ".csv", ".txt", ""}  # "" : a file without a suffix, read as CSV


def read_rows(
    path: Path, shape: RowShape, ids: tuple[int, int] | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A CSV or ``.npy`` file -> its rows grouped by shape: ``(row numbers, array (n, *row shape))`` per
    group, one group unless the shape has a dynamic axis (a CSV of sequences of several lengths). Values are
    float64, or int64 for an integer input whose values must lie in ``ids`` (lowest, highest); ``UsageError``
    naming the file and the line (CSV) or row (``.npy``, counted from 0) that is wrong."""
    if not path.is_file():
        raise UsageError(f"--input: no such file: {path}")
    if path.suffix.lower() not in _ROW_FILES:
        raise UsageError(
            f"--input: {path} is not a CSV or .npy file (it reads {', '.join(sorted(_ROW_FILES - {''}))}); "
            "JSON requests go to `litforge serve`"
        )
    dtype = np.int64 if ids else np.float64
    if path.suffix == ".npy":
        rows = _read_npy(path, shape, ids)
        return [(np.arange(len(rows)), _shaped(rows, shape, dtype))]
    by_length: dict[int, list[list[float | int]]] = {}
    numbers: dict[int, list[int]] = {}
    for number, row in enumerate(_read_csv(path, shape, ids)):
        by_length.setdefault(len(row), []).append(row)
        numbers.setdefault(len(row), []).append(number)
    return [(np.array(numbers[n]), _shaped(np.array(by_length[n]), shape, dtype)) for n in by_length]


def _shaped(rows: np.ndarray, shape: RowShape, dtype: type) -> np.ndarray:
    """Flat rows (n, values) of one length -> (n, *row shape) in ``dtype``."""
    return rows.astype(dtype).reshape(len(rows), *concrete(shape, rows.shape[1]))  # type: ignore[misc]


def _read_npy(path: Path, shape: RowShape, ids: tuple[int, int] | None) -> np.ndarray:
    """An array (N, values per row) or (N, *row shape) -> (N, values per row)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UsageError(f"--input: cannot read {path} as .npy: {err}") from None
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise UsageError(f"--input: {path} holds {array.dtype}, not real numbers")
    width = math.prod(array.shape[1:])
    nested = concrete(shape, width)
    if array.ndim < 2 or nested is None or array.shape[1:] not in ((width,), nested):
        layouts = dict.fromkeys(f"(N, {', '.join(map(str, s))})" for s in ((takes(shape),), shape))
        raise UsageError(
            f"--input: {path} holds an array of shape {array.shape}; the model takes {' or '.join(layouts)}"
        )
    rows = array.reshape(len(array), width)
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        raise UsageError(f"--input: row {int(np.argmin(finite))} of {path} has NaN or infinite values")
    if ids is not None and (bad := first_bad_id(rows, ids)) is not None:
        raise UsageError(f"--input: row {bad[0]} of {path}: {bad[1]}")
    return rows


def _read_csv(path: Path, shape: RowShape, ids: tuple[int, int] | None) -> list[list[float | int]]:
    """Rows of finite numbers (whole numbers within ``ids`` for an integer input), as many as ``shape`` takes,
    after an optional header line: a first line none of whose cells is a number. A BOM (Excel's "CSV UTF-8")
    is skipped."""
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
            if concrete(shape, len(cells)) is None:
                raise UsageError(f"--input: {line} has {len(cells)} values; the model takes {takes(shape)}")
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
    return rows


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
