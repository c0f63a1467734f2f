"""The ``predictions.csv`` columns, the same for a checkpoint and an exported artifact.

litforge predict --ckpt_path runs/classifier/v0/checkpoints/best.ckpt     # -> <run>/predictions.csv
litforge predict --artifact runs/classifier/v0/export --input rows.csv   # -> rows.predictions.csv

``row`` then, by the model's output head (``litforge.predictions.output_head``):

- classification: ``prediction`` (class index), ``label`` (its name, when the classes have names),
  ``prob_<class name or index>...``;
- multi_label: ``prediction_<label name or index>...`` (0 or 1 each), ``prob_<label name or index>...``;
- regression (or any one value per sample): ``prediction``;
- multi_output / custom: ``prediction_0 ... prediction_<K-1>`` (several values per sample, flattened
  row-major; a note on stderr gives the shape of a sample's output of several axes).

A ``predict_step`` that returns a dict of per-sample tensors (a multi-task model's heads) gets a column per
key, ``<key>`` for one value per sample, else ``<key>_0 ... <key>_<K-1>``: the values as returned. One that
returns a list of one dict per sample (a detector's boxes, scores and labels, as many as it found) gets a
column per key holding each sample's values as JSON (``[[x1, y1, x2, y2], ...]``).

Numbers are written in their shortest exact form for their dtype (float32 round-trips).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from litforge.predictions.output_head import Predictions


def header(predictions: Predictions, class_names: Sequence[str] | None) -> list[str]:
    """The column names for batches shaped like ``predictions``."""
    values = predictions.values
    names = labels(predictions, class_names)
    columns = ["row"]
    if values.ndim == 1:
        columns.append("prediction")
    else:
        per_label = names if is_multi_label(predictions) and names else None
        columns += [f"prediction_{i}" for i in (per_label or range(int(np.prod(values.shape[1:]))))]
    if predictions.probabilities is not None:
        columns += ["label"] if names and not is_multi_label(predictions) else []
        columns += [f"prob_{name}" for name in (names or range(predictions.probabilities.shape[1]))]
    return columns


def flattening_note(predictions: Predictions) -> str | None:
    """For outputs of several axes per sample (a segmentation's (3, 16, 16) logits): how they lie in the
    ``prediction_*`` columns, which keep no shape."""
    shape = tuple(predictions.values.shape[1:])
    if len(shape) < 2:
        return None
    return (
        f"each sample's output of shape {shape} is flattened row-major into prediction_0..prediction_"
        f"{int(np.prod(shape)) - 1} (numpy: row.reshape{shape})"
    )


def is_multi_label(predictions: Predictions) -> bool:
    """Probabilities with one 0/1 prediction per label (several per sample), not one class per sample."""
    return predictions.probabilities is not None and predictions.values.ndim > 1


def rows(
    predictions: Predictions, class_names: Sequence[str] | None, first_row: int = 0
) -> Iterator[list[str]]:
    """One list of cells per sample, in ``header``'s order, numbered from ``first_row``."""
    names = labels(predictions, class_names)
    values = predictions.values.reshape(len(predictions), -1) if predictions.values.ndim > 1 else None
    for i in range(len(predictions)):
        cells = [str(first_row + i)]
        cells += [str(v) for v in values[i]] if values is not None else [str(predictions.values[i])]
        if predictions.probabilities is not None:
            cells += [names[int(predictions.values[i])]] if names and values is None else []
            cells += [str(p) for p in predictions.probabilities[i]]
        yield cells


def labels(predictions: Predictions, class_names: Sequence[str] | None) -> list[str] | None:
    """The class names when they name the probability columns (as many names as classes), else None."""
    probabilities = predictions.probabilities
    if not class_names or probabilities is None or len(class_names) != probabilities.shape[1]:
        return None
    return [str(name) for name in class_names]


def named_header(outputs: dict[str, np.ndarray]) -> list[str]:
    """``row``, then ``key`` (one value per sample) or ``key_0 ... key_<K-1>`` for each named output."""
    columns = ["row"]
    for key, values in outputs.items():
        width = int(np.prod(values.shape[1:]))
        columns += [key] if values.ndim == 1 else [f"{key}_{i}" for i in range(width)]
    return columns


def named_rows(outputs: dict[str, np.ndarray], first_row: int = 0) -> Iterator[list[str]]:
    """One list of cells per sample, in ``named_header``'s order, numbered from ``first_row``."""
    flat = [values.reshape(len(values), -1) for values in outputs.values()]
    for i in range(len(flat[0])):
        yield [str(first_row + i), *(str(v) for values in flat for v in values[i])]


def record_rows(records: list[dict[str, Any]], first_row: int = 0) -> Iterator[list[str]]:
    """One row per sample of a ``predict_step`` that returns one dict per sample (a detector's
    ``[{"boxes": (n, 4), "scores": (n,), "labels": (n,)}, ...]``, n varying): each value as JSON, in the
    keys' order (``record_keys``)."""
    for i, record in enumerate(records):
        yield [str(first_row + i), *(json.dumps(_plain(value)) for value in record.values())]


def _plain(value: Any) -> Any:
    """A tensor, array or number as JSON's lists and numbers (NaN and infinities as null)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        value = value.float() if value.dtype.is_floating_point and value.itemsize < 4 else value
        value = value.numpy()
    if isinstance(value, np.ndarray) and value.dtype == np.float32:  # its shortest exact form, not float64's
        value = np.array([float(str(v)) for v in value.ravel()], dtype=object).reshape(value.shape)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):  # JSON has no NaN or Infinity
        return None
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
