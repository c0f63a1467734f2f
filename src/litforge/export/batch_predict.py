"""Batch inference from an export folder: ``litforge predict --artifact DIR --input FILE [--output FILE]``.

litforge predict --artifact runs/classifier/version_0/export --input digits.csv
litforge predict --artifact exports/digits --input rows.npy --output preds.csv --format pt2

Input: a CSV of numbers (one row per sample, header optional) or a ``.npy`` of rows; the artifact's raw
feature layout (``export.json`` -> inputs). A text model's export reads a ``.txt`` of one text per line or a
CSV's ``text`` column, tokenized by the export's own tokenizer. Output: the CSV columns ``litforge predict`` writes from a
checkpoint for the model's output head (``litforge.predictions.csv_columns``). No training code and no checkpoint
are needed: only the export folder.
"""

from __future__ import annotations

import csv
import math
import re
import sys
import zipfile
from pathlib import Path
from typing import TextIO

import numpy as np

from litforge.atomic_files import atomic_path
from litforge.errors import UsageError, first_line
from litforge.export.artifact import Answer, Artifact, Rows
from litforge.export.feature_names import columns_by_name
from litforge.export.input_values import first_bad_id, value_problem
from litforge.export.row_shape import FeatureInput, RowShape, axis_mismatch, concrete, is_dynamic, step, takes
from litforge.predictions import csv_columns

CHUNK_ROWS = 4096


def predict_file(
    artifact_dir: Path, input_path: Path, output: Path | None = None, fmt: str | None = None
) -> tuple[int, str, Path]:
    """Predict every row of ``input_path`` with the artifact and write the CSV atomically.

    Returns the number of rows, the artifact format used and the CSV written (default:
    ``default_output(input_path)``; ``STDOUT`` writes to standard output).
    """
    artifact = Artifact.open(artifact_dir, fmt)
    output = output or default_output(input_path)
    if output != STDOUT:
        _check_output(output, input_path, artifact_dir)
    if artifact.request_format == "texts":
        return _predict_texts(artifact, input_path, output)
    groups = read_rows(input_path, artifact.inputs)
    try:
        outputs = [
            artifact.outputs(tuple(array[start : start + CHUNK_ROWS] for array in rows))
            for _, rows in groups
            for start in range(0, len(rows[0]), CHUNK_ROWS)
        ]
    except Exception as error:  # values that pass the checks but not the model (a lengths beyond the tokens)
        raise UsageError(
            f"--input: the exported model cannot run on the rows of {input_path}: "
            f"{type(error).__name__}: {first_line(error)}"
        ) from None
    if len({tuple(array.shape[1:] for array in output) for output in outputs}) > 1:
        raise UsageError(
            f"--input: the rows of {input_path} have {len(groups)} lengths and the model's outputs differ in "
            "shape with the length; predict rows of one length per file"
        )
    in_file_order = np.argsort(np.concatenate([lines for lines, _ in groups]), kind="stable")
    predictions = artifact.postprocess(
        [np.concatenate(arrays)[in_file_order] for arrays in zip(*outputs, strict=True)]
    )
    write_predictions(output, predictions, artifact.class_labels)
    return len(in_file_order), artifact.format, output


STDOUT = Path("-")
TEXT_CHUNK = 256  # texts tokenized and run together: padding to the longest of 256 keeps memory small


def _predict_texts(artifact: Artifact, input_path: Path, output: Path) -> tuple[int, str, Path]:
    """A text model's export: each text tokenized by the exported tokenizer, as ``serve`` does."""
    texts = read_texts(input_path)
    outputs = [
        artifact.outputs_for_texts(texts[start : start + TEXT_CHUNK])
        for start in range(0, len(texts), TEXT_CHUNK)
    ]
    predictions = artifact.postprocess([np.concatenate(arrays) for arrays in zip(*outputs, strict=True)])
    write_predictions(output, predictions, artifact.class_labels)
    return len(texts), artifact.format, output


def read_texts(path: Path) -> list[str]:
    """The texts of a ``.txt`` file (one per line) or of a CSV's ``text`` column (its header names it; other
    columns, an id say, are left out); blank lines at the end are left out. ``UsageError`` for a missing
    file, no texts, a blank text before the last one, or a CSV with no ``text`` column."""
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--input: no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--input: cannot read {path} as UTF-8 text: {error}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(content.splitlines())
        if "text" not in (reader.fieldnames or []):
            raise UsageError(
                f"--input {path}: a text model reads the CSV column 'text' (its header has: "
                f"{', '.join(reader.fieldnames or []) or 'nothing'}); or pass a .txt file of one text per line"
            )
        texts, first_number, unit = [row["text"] or "" for row in reader], 2, "row"
    else:
        texts, first_number, unit = content.splitlines(), 1, "line"
    while texts and not texts[-1].strip():  # the blank lines a file ends with
        texts.pop()
    if not texts:
        raise UsageError(f"--input {path}: no texts in it")
    _refuse_blank_texts(path, texts, first_number, unit)
    return texts


def _refuse_blank_texts(path: Path, texts: list[str], first_number: int, unit: str) -> None:
    """A blank text inside the file is refused: its prediction would be the model's guess for no text at
    all, in a row the user reads as an answer (dropping it would shift every later row off its line)."""
    blank = [number for number, text in enumerate(texts, start=first_number) if not text.strip()]
    if blank:
        shown = ", ".join(map(str, blank[:5])) + (f" and {len(blank) - 5} more" if len(blank) > 5 else "")
        raise UsageError(
            f"--input {path}: {unit}{'s' if len(blank) > 1 else ''} {shown} {'are' if len(blank) > 1 else 'is'} "
            f"blank; each {unit} is one text to predict, so remove the blank ones (the prediction rows "
            f"follow the input's {unit}s)"
        )


def _check_output(output: Path, input_path: Path, artifact_dir: Path) -> None:
    """Refuse an ``--output`` that would overwrite the input or a file of the export folder."""
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


def default_output(input_path: Path) -> Path:
    """``rows.csv`` -> ``rows.predictions.csv``; any other file keeps its suffix (``rows.npy`` ->
    ``rows.npy.predictions.csv``), so rows.npy and rows.npz do not write one file."""
    name = input_path.stem if input_path.suffix.lower() == ".csv" else input_path.name
    return input_path.with_name(f"{name}.predictions.csv")


_ROW_FILES = {".npy", ".npz", ".csv", ".txt", ""}  # "" : a file without a suffix, read as CSV


def read_rows(path: Path, inputs: tuple[FeatureInput, ...]) -> list[tuple[np.ndarray, Rows]]:
    """A CSV, ``.npy`` or ``.npz`` file -> its rows grouped by shape: ``(row numbers, one array (n, *row shape)
    per input)`` per group; one group unless a row shape has a dynamic axis (a CSV of sequences of several
    lengths). Several inputs come from a ``.npz`` with one array per input name. Values are float64, or int64
    for an integer input (values within its ids); ``UsageError`` naming the file and the line (CSV) or row
    (arrays, counted from 0) that is wrong."""
    if not path.is_file():
        raise UsageError(f"--input: no such file: {path}")
    if path.suffix.lower() not in _ROW_FILES:
        raise UsageError(
            f"--input: {path} is not a CSV, .npy or .npz file (it reads "
            f"{', '.join(sorted(_ROW_FILES - {''}))}); JSON requests go to `litforge serve`"
        )
    if path.suffix == ".npz":
        rows = _read_npz(path, inputs)
        return [(np.arange(len(rows[0])), rows)]
    if len(inputs) > 1:
        if path.suffix == ".npy":
            raise UsageError(
                f"--input: {path} holds one array; {_several_inputs(inputs)}, or a CSV of their columns"
            )
        rows = _read_csv_of_inputs(path, inputs)
        return [(np.arange(len(rows[0])), rows)]
    (only,) = inputs
    if path.suffix == ".npy":
        array = _load_rows(path, only, _load_npy(path))
        return [(np.arange(len(array)), (array,))]
    by_length: dict[int, list[list[float | int]]] = {}
    numbers: dict[int, list[int]] = {}
    for number, row in enumerate(_read_csv(path, only.shape, only.bounds, only.features)):
        by_length.setdefault(len(row), []).append(row)
        numbers.setdefault(len(row), []).append(number)
    return [(np.array(numbers[n]), (_shaped(np.array(by_length[n]), only),)) for n in by_length]


def _read_csv_of_inputs(path: Path, inputs: tuple[FeatureInput, ...]) -> Rows:
    """A CSV whose columns are the values of each input in turn (``forward(categories, numbers)``: the
    categories' columns, then the numbers'); a header picks them by name when every input's columns have
    names (its ``features``; an input of one value per row, ``forward(user_ids, item_ids)``, by its own
    name). Inputs of a dynamic length need a ``.npz``."""
    if any(is_dynamic(spec.shape) for spec in inputs):
        raise UsageError(
            f"--input: {path} holds one table and an input varies in length; {_several_inputs(inputs)}"
        )
    widths = [step(spec.shape) for spec in inputs]
    split = " + ".join(f"{spec.name} {width}" for spec, width in zip(inputs, widths, strict=True))
    columns = [
        spec.features or ((spec.name,) if width == 1 else None)
        for spec, width in zip(inputs, widths, strict=True)
    ]
    by_name = tuple(name for names in columns for name in names or ()) if all(columns) else None
    bounds = [spec.bounds for spec, width in zip(inputs, widths, strict=True) for _ in range(width)]
    table = np.array(
        _read_csv(path, (sum(widths),), bounds, by_name, f"{sum(widths)} ({split})"), dtype=object
    )
    ends = np.cumsum(widths)
    return tuple(
        _load_rows(f"{path} ({spec.name})", spec, np.array(table[:, end - width : end].tolist()))
        for spec, width, end in zip(inputs, widths, ends, strict=True)
    )


def _several_inputs(inputs: tuple[FeatureInput, ...]) -> str:
    names = ", ".join(i.name for i in inputs)
    example = ", ".join(f"{i.name}=..." for i in inputs)
    return f"the model takes {len(inputs)} inputs ({names}): give a .npz of one array each (numpy.savez('rows.npz', {example}))"


def _shaped(rows: np.ndarray, spec: FeatureInput) -> np.ndarray:
    """Flat rows (n, values) of one length -> (n, *row shape), int64 for an integer input, else float64."""
    dtype = np.int64 if spec.bounds else np.float64
    return rows.astype(dtype).reshape(len(rows), *concrete(spec.shape, rows.shape[1]))  # type: ignore[misc]


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UsageError(f"--input: cannot read {path} as .npy: {err}") from None


def _read_npz(path: Path, inputs: tuple[FeatureInput, ...]) -> Rows:
    """One array per input, found by its name (any one name for a model of one input), all of N rows."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise UsageError(f"--input: cannot read {path} as .npz: {err}") from None
    names = [i.name for i in inputs]
    if len(inputs) == 1 and len(arrays) == 1:
        arrays = {names[0]: next(iter(arrays.values()))}
    if sorted(arrays) != sorted(names):
        raise UsageError(f"--input: {path} holds the arrays {sorted(arrays)}; the model takes {names}")
    rows = tuple(_load_rows(f"{path} ({i.name})", i, arrays[i.name]) for i in inputs)
    if len({len(r) for r in rows}) > 1:
        counts = ", ".join(f"{i.name} {len(r)}" for i, r in zip(inputs, rows, strict=True))
        raise UsageError(f"--input: the arrays of {path} have different numbers of rows ({counts})")
    if mismatch := axis_mismatch({i.name: (i.shape, r.shape[1:]) for i, r in zip(inputs, rows, strict=True)}):
        raise UsageError(f"--input: in {path}, {mismatch}: inputs that share a dynamic axis take one length")
    return rows


def _load_rows(where: str | Path, spec: FeatureInput, array: np.ndarray) -> np.ndarray:
    """An array (N, values per row) or (N, *row shape) -- (N,) for a 1-D input -- checked -> (N, *row shape)."""
    if array.dtype == np.bool_ and spec.dtype == "bool":
        array = array.astype(np.uint8)  # a mask for a bool input: checked as the 0/1 it stands for
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise UsageError(f"--input: {where} holds {array.dtype}, not real numbers")
    if not spec.shape and array.ndim == 1:
        array = array[:, None]  # a 1-D input (lengths): one number per row
    width = math.prod(array.shape[1:])
    nested = concrete(spec.shape, width)
    if array.ndim < 2 or nested is None or array.shape[1:] not in ((width,), nested):
        shape = spec.shape
        layouts = dict.fromkeys(f"(N, {', '.join(map(str, s))})" for s in ((takes(shape),), shape) if s)
        raise UsageError(
            f"--input: {where} holds an array of shape {array.shape}; the model takes "
            f"{' or '.join(layouts) or '(N,)'}"
        )
    rows = array.reshape(len(array), width)
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        raise UsageError(f"--input: row {int(np.argmin(finite))} of {where} has NaN or infinite values")
    if spec.bounds is not None and (bad := first_bad_id(rows, spec.bounds)) is not None:
        raise UsageError(f"--input: row {bad[0]} of {where}: {bad[1]}")
    return _shaped(rows, spec)


def _read_csv(
    path: Path,
    shape: RowShape,
    ids: tuple[int, int] | list[tuple[int, int] | None] | None,
    features: tuple[str, ...] | None = None,
    takes_text: str | None = None,
) -> list[list[float | int]]:
    """Rows of finite numbers (whole numbers within ``ids`` for an integer input), as many as ``shape`` takes,
    after an optional header line: a first line none of whose cells is a number. A BOM (Excel's "CSV UTF-8")
    is skipped. When the export names its ``features``, a header picks them by name, in any order, and the
    other columns (an id, the target) are left out, with a note."""
    rows: list[list[float | int]] = []
    header = ""
    picked: list[int] | None = None
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for index, cells in enumerate(filter(None, reader)):
            line = f"line {reader.line_num} of {path}"
            if index == 0 and ids is not None and len(cells) == 1 and _reads_as_text(cells[0]):
                raise UsageError(_text_for_token_ids(line, cells[0]))  # a .txt of texts, not a header
            if index == 0 and not any(map(_is_number, cells)):
                header, width = ",".join(cells), len(cells)
                if features:
                    picked = _picked_columns(cells, features, path)
                continue  # a header
            if picked is not None:
                if len(cells) != width:
                    raise UsageError(f"--input: {line} has {len(cells)} cells; its header has {width}")
                cells = [cells[i] for i in picked]
            bad = next((cell for cell in cells if not _is_number(cell)), None)
            if bad is not None and ids is not None and _reads_as_text(bad):
                raise UsageError(_text_for_token_ids(line, bad))
            if bad is not None:
                shown = repr(bad) if len(bad) <= 40 else f"{bad[:40]!r}..."
                raise UsageError(f"--input: {line} has a non-numeric value {shown}{_separator_hint(bad)}")
            if concrete(shape, len(cells)) is None:
                raise UsageError(
                    f"--input: {line} has {len(cells)} values; the model takes {takes_text or takes(shape)}"
                )
            values = [_number(cell) for cell in cells]
            if not all(map(math.isfinite, values)):
                raise UsageError(f"--input: {line} has NaN or infinite values")
            column_ids = ids if isinstance(ids, list) else [ids] * len(values)  # one per column, or for all
            problems = (value_problem(v, b) for v, b in zip(values, column_ids, strict=True) if b is not None)
            if problem := next(filter(None, problems), None):
                raise UsageError(f"--input: {line}: {problem}")
            rows.append(values)
    if not rows:
        read_as = f" (its first line, {header[:60]!r}, was read as a header; values are separated by commas)"
        raise UsageError(
            f"--input: {path} has no data rows{(_separator_hint(header) or read_as) if header else ''}"
        )
    if header and not features and "," in header:  # names the export cannot check: a reordered header
        print(
            f"litforge: note: {path}: line 1 is read as a header; the export names no features, so columns "
            "are taken in their order, not by these names",
            file=sys.stderr,
        )
    return rows


def _reads_as_text(cell: str) -> bool:
    """Words with a space between them: a sentence, not a number or a column name."""
    return re.search(r"[^\W\d_]\s+[^\W\d_]", cell) is not None


def _text_for_token_ids(line: str, cell: str) -> str:
    return (
        f"--input: {line} is text ({cell!r}), but this export takes token ids, not texts (an export that "
        "tokenizes texts itself has request_format 'texts' and a tokenizer: docs/export.md)"
    )


def _separator_hint(cell: str) -> str:
    """For a cell of numbers joined by another separator (``1;2;3``, a locale's CSV, or tabs): say so."""
    for separator, name in ((";", "semicolons"), ("\t", "tabs")):
        parts = cell.split(separator)
        if len(parts) > 1 and all(map(_is_number, parts)):
            return f" (its values are separated by {name}; litforge reads comma-separated values)"
    return ""


def _picked_columns(header: list[str], features: tuple[str, ...], path: Path) -> list[int]:
    """The header's columns of the export's features, in their order; a note when that is not the header's
    order or when columns are left out."""
    picked, left_out = columns_by_name(header, features, str(path))
    notes = []
    if sorted(picked) != picked:
        notes.append(f"its columns are read by name in the model's order ({', '.join(features)})")
    if left_out:
        notes.append(f"columns the model does not take are left out ({', '.join(left_out)})")
    if notes:
        print(f"litforge: note: {path}: {'; '.join(notes)}", file=sys.stderr)
    return picked


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


def write_predictions(path: Path, predictions: Answer, labels: list[str] | None) -> None:
    """The ``litforge.predictions.csv_columns`` columns (as ``litforge predict`` writes from a checkpoint),
    written atomically, or to standard output for ``-``."""
    if path == STDOUT:
        _write_csv(sys.stdout, predictions, labels)
        return
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        _write_csv(handle, predictions, labels)


def _write_csv(handle: TextIO, predictions: Answer, labels: list[str] | None) -> None:
    writer = csv.writer(handle)
    if isinstance(predictions, dict):  # several outputs: a column or columns per output, as they are
        writer.writerow(csv_columns.named_header(predictions))
        writer.writerows(csv_columns.named_rows(predictions))
        return
    writer.writerow(csv_columns.header(predictions, labels))
    writer.writerows(csv_columns.rows(predictions, labels))
    if note := csv_columns.flattening_note(predictions):
        print(f"litforge: note: {note}", file=sys.stderr)
