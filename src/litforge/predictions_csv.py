"""The ``predictions.csv`` columns, the same for a checkpoint and an exported artifact.

litforge predict --ckpt_path runs/classifier/v0/checkpoints/best.ckpt     # -> <run>/predictions.csv
litforge predict --artifact runs/classifier/v0/export --input rows.csv   # -> rows.predictions.csv

``row, prediction, label, prob_<class>...``: ``label`` (the predicted class's name) when the classes have
names, one ``prob_<class name or index>`` column per class when the model gives scores.
"""

from __future__ import annotations

from collections.abc import Sequence


def header(class_names: Sequence[str] | None, classes: int | None) -> list[str]:
    """The column names; ``classes``: the number of score columns (None: the model gives no scores)."""
    columns = ["row", "prediction", *(["label"] if class_names else [])]
    if classes is not None:
        columns += [f"prob_{name}" for name in (class_names or range(classes))]
    return columns


def row(
    index: int, predicted: int | float, scores: Sequence[float] | None, class_names: Sequence[str] | None
) -> list[object]:
    """One sample's cells, in ``header``'s order."""
    cells: list[object] = [index, predicted]
    if class_names:
        known = float(predicted).is_integer() and 0 <= int(predicted) < len(class_names)
        cells.append(class_names[int(predicted)] if known else "")
    if scores is not None:
        cells += [f"{p:.6g}" for p in scores]
    return cells
