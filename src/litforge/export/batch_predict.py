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
    rows = read_rows(args.input, artifact.row_shape)
    output = args.output or args.input.with_name(f"{args.input.stem}.predictions.csv")
    chunks = [artifact.predict(rows[start : start + CHUNK_ROWS]) for start in range(0, len(rows), CHUNK_ROWS)]
    write_predictions(output, Predictions.concatenate(chunks), artifact.class_labels)
    print(f"{len(rows)} rows predicted with {artifact.format}: {output}")
    return 0


def read_rows(path: Path, row_shape: tuple[int, ...]) -> np.ndarray:
    """A CSV or ``.npy`` file -> float array (N, *row_shape); ``UsageError`` naming what is wrong."""
    if not path.is_file():
        raise UsageError(f"--input: no such file: {path}")
    width = int(np.prod(row_shape))
    if path.suffix == ".npy":
        try:
            rows = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise UsageError(f"--input: cannot read {path} as .npy: {err}") from None
        if not np.issubdtype(rows.dtype, np.number):
            raise UsageError(f"--input: {path} holds {rows.dtype}, not numbers")
        rows = rows.reshape(len(rows), -1) if rows.ndim > 1 else rows.reshape(1, -1)
    else:
        rows = _read_csv(path)
    if rows.shape[1] != width:
        raise UsageError(f"--input: rows of {path} have {rows.shape[1]} values; the model takes {width}")
    if not np.isfinite(rows).all():
        bad = int(np.argwhere(~np.isfinite(rows))[0][0])
        raise UsageError(f"--input: row {bad} of {path} has NaN or infinite values")
    return rows.astype(np.float32).reshape(len(rows), *row_shape)


def _read_csv(path: Path) -> np.ndarray:
    with path.open(newline="") as handle:
        lines = [line for line in csv.reader(handle) if line]
    if lines and not _numeric(lines[0]):
        lines = lines[1:]  # a header
    if not lines:
        raise UsageError(f"--input: {path} has no data rows")
    widths = {len(line) for line in lines}
    if len(widths) != 1:
        raise UsageError(f"--input: rows of {path} have different lengths {sorted(widths)}")
    try:
        return np.array([[float(v) for v in line] for line in lines], dtype=np.float64)
    except ValueError as err:
        raise UsageError(f"--input: {path} has a non-numeric value ({err})") from None


def _numeric(cells: list[str]) -> bool:
    try:
        [float(c) for c in cells]
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
