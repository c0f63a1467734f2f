"""``litforge predict --artifact DIR --input FILE [--output FILE] [--format F]``: batch inference from an
export folder, without the training code (``litforge.export.batch_predict``).

litforge predict --artifact runs/classifier/version_0/export --input digits.csv
litforge predict --artifact exports/digits --input rows.npy --output preds.csv --format pt2
litforge predict --artifact exports/digits --input rows.csv --output - | head   # the CSV on standard output
"""

from __future__ import annotations

import sys
from pathlib import Path

from litforge.cli.command_parser import CommandParser


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="litforge predict --artifact",
        description="Predict rows of a CSV, .npy or .npz file with an exported model (see docs/export.md).",
    )
    parser.add_argument(
        "--artifact", required=True, type=Path, help="export folder written by 'litforge export'"
    )
    parser.add_argument(
        "--input",
        required=True,
        type=Path,
        help="CSV (header optional) or .npy of raw rows; a .npz with one array per input for a model of several",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="CSV to write, '-' for standard output (default: rows.csv -> rows.predictions.csv, "
        "rows.npy -> rows.npy.predictions.csv)",
    )
    parser.add_argument(
        "--format", default=None, help="onnx, pt2 or torchscript (default: the first available)"
    )
    return parser


def main(command: str, argv: list[str]) -> int:
    """Parse the options, predict, say where the CSV went (on standard error when the CSV is standard output)."""
    from litforge.export.batch_predict import STDOUT, predict_file
    from litforge.export.metadata import note_if_source_changed

    args = build_parser().parse_args(argv)
    rows, fmt, output = predict_file(args.artifact, args.input, args.output, args.format)
    note_if_source_changed(args.artifact)
    where = "standard output" if output == STDOUT else output
    print(
        f"{rows} {'row' if rows == 1 else 'rows'} predicted with {fmt}: {where}",
        file=sys.stderr if output == STDOUT else sys.stdout,
    )
    return 0
