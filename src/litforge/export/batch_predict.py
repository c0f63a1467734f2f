"""Batch inference from an export folder: ``litforge predict --artifact DIR --input FILE [--output FILE]``.

litforge predict --artifact runs/classifier/version_0/export --input digits.csv
litforge predict --artifact exports/digits --input rows.npy --output preds.csv --format pt2

Input: a CSV of numbers (one row per sample, header optional) or a ``.npy`` of rows; the artifact's raw
feature layout (``export.json`` -> inputs). Output: the CSV columns ``litforge predict`` writes from a
checkpoint for the model's output head (``litforge.predictions_csv``). No training code and no checkpoint
are needed: only the export folder.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from litforge import predictions_csv
from litforge.cli.args import ArgumentParser
from litforge.errors import UsageError
from litforge.export.artifact import Artifact
from litforge.output_head import Predictions

CHUNK_ROWS = 4096


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="litforge predict --artifact", description=__doc__.splitlines()[0].replace("``", "")
    )
    parser.add_argument(
        "--artifact", required=True, type=Path, help="export folder written by 'litforge export'"
    )
    parser.add_argument("--input", required=True, type=Path, help="CSV (header optional) or .npy of raw rows")
    parser.add_argument(
        "--output", type=Path, default=None, help="CSV to write (default: <input>.predictions.csv)"
    )
    parser.add_argument(
        "--format", default=None, help="onnx, pt2 or torchscript (default: the first available)"
    )
    return parser


def main(command: str, argv: list[str]) -> int:
    """Predict every row of ``--input`` with the artifact and write the CSV atomically."""
    args = build_parser().parse_args(argv)
    artifact = Artifact.open(args.artifact, args.format)
    if artifact.request_format != "features":
        raise UsageError(
            f"{args.artifact} takes {artifact.request_format}; batch prediction reads numeric rows"
        )
    output = args.output or args.input.with_name(f"{args.input.stem}.predictions.csv")
    if output.resolve() == args.input.resolve() or (output.exists() and output.samefile(args.input)):
        raise UsageError(f"--output: {output} is the --input file; refusing to overwrite it")
    rows = read_rows(args.input, artifact.row_shape)
    chunks = [artifact.predict(rows[start : start + CHUNK_ROWS]) for start in range(0, len(rows), CHUNK_ROWS)]
    write_predictions(output, Predictions.concatenate(chunks), artifact.class_labels)
    print(f"{len(rows)} rows predicted with {artifact.format}: {output}")
    return 0


def read_rows(path: Path, row_shape: tuple[int, ...]) -> np.ndarray:
    """A CSV or ``.npy`` file -> float32 array (N, *row_shape); ``UsageError`` naming the file and the
    line (CSV) or row (``.npy``) that is wrong."""
    if not path.is_file():
        raise UsageError(f"--input: no such file: {path}")
    width = math.prod(row_shape)
    rows = _read_npy(path, row_shape) if path.suffix == ".npy" else _read_csv(path, width)
    return rows.astype(np.float32).reshape(len(rows), *row_shape)


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
    """The ``litforge.predictions_csv`` columns (as ``litforge predict`` writes from a checkpoint) to a
    temporary file, then renamed into place. (Not ``write_atomically``: its module imports torch, which
    predicting with an ONNX artifact does not need.)"""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(predictions_csv.header(predictions, labels))
        writer.writerows(predictions_csv.rows(predictions, labels))
    os.replace(tmp, path)
