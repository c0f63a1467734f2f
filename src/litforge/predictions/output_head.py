"""What a model's output means: one of six heads, used alike by every way of predicting.

litforge predict --ckpt_path best.ckpt ...        # predict_step's tensor -> head -> predictions.csv
litforge predict --artifact <run>/export ...      # the exported forward's output -> head -> CSV
litforge serve <run>/export                       # the same -> head -> JSON

classification  class scores (B, C) -> prediction = argmax, probabilities = softmax; for two classes one
                logit (B,) or (B, 1) also works -> probabilities = [1 - sigmoid, sigmoid]
multi_label     one logit per label (B, K), labels independent -> probabilities = sigmoid, prediction = one
                0/1 per label (probability > 0.5)
segmentation    class scores per pixel (or position) (B, C, H, W) or (B, C, L) -> prediction = the class map
                argmax over C, (B, H, W) (no probabilities: C values per pixel would dwarf the answer)
regression      one float per sample (B,) or (B, 1) -> prediction = the value
multi_output    several floats per sample (B, K) that are not class scores -> prediction_0..K-1
custom          anything else (integer outputs, several axes per sample) -> the raw values, flattened

A module declares its head with a class attribute, ``output_head = "regression"``. Without one the head
is inferred from forward's output for one batch and from whether the module or datamodule declares
classes (``num_classes`` or ``n_classes``, ``class_names``): integer outputs or more than one axis per
sample -> custom; one value per sample -> regression (classification when exactly two classes are declared); C values per
sample -> classification when C classes are declared, else multi_output; (C, H, W) per sample with C
declared (multiclass) classes -> segmentation; multi_label when the module's
``predict_step`` returns the sigmoid of forward's several outputs (checked on a real batch). A module's
torchmetrics classification metrics count its classes when nothing declares them: ``Accuracy(task=
"multiclass", num_classes=10)`` makes 10 outputs per sample a classification, a ``Multilabel*`` metric of
K labels makes K outputs multi_label; failing those, a batch whose labels are integers (``(x, y)`` with
``y`` of shape (B,), cross-entropy targets) below C makes C outputs a classification. Limits of the rule: a
classifier that declares no classes, has no such metric and whose predict batches carry no labels reads as
multi_output, and a regressor with several targets that happens to declare ``num_classes`` equal to its
width reads as classification; declare ``output_head`` then.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from litforge.errors import UsageError

HEADS = ("classification", "multi_label", "segmentation", "regression", "multi_output", "custom")
# An export whose forward returns several tensors (a tuple or dict of heads, ``litforge.export.outputs``):
# each output answered as it is, under its name.
NAMED_OUTPUTS = "named_outputs"
# A classifier's predict_step that returns class probabilities itself: argmax, probabilities as they are.
PROBABILITIES = "probabilities"
# A multi-label model's predict_step that returns sigmoid(forward) itself: > 0.5, probabilities as they are.
LABEL_PROBABILITIES = "label_probabilities"
ATTRIBUTE = "output_head"
# How export.json describes each head's postprocessing of the model output.
POSTPROCESSING = {
    "classification": {
        "prediction": "argmax(output, axis=-1) (one logit per sample: sigmoid(output) > 0.5)",
        "probabilities": "softmax(output, axis=-1) (one logit per sample: [1 - sigmoid, sigmoid])",
    },
    "multi_label": {
        "prediction": "sigmoid(output) > 0.5, one 0/1 per label",
        "probabilities": "sigmoid(output), one per label",
    },
    "segmentation": {
        "prediction": "argmax(output, axis=1): the class of each pixel (position), shape (H, W)"
    },
    "regression": {"prediction": "output, one float per sample"},
    "multi_output": {"prediction": "output, one list of floats per sample"},
    "custom": {"prediction": "output as it is, flattened per sample in CSV"},
    NAMED_OUTPUTS: {"prediction": "each output as it is, under its name (<name> or <name>_0... in CSV)"},
}


@dataclass
class Predictions:
    """A batch's predictions: ``values`` (N,) one per sample or (N, ...) several; class probabilities
    (N, C) for a classification head."""

    values: np.ndarray
    probabilities: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, rows: slice) -> Predictions:
        probabilities = None if self.probabilities is None else self.probabilities[rows]
        return Predictions(self.values[rows], probabilities)

    @staticmethod
    def concatenate(parts: Sequence[Predictions]) -> Predictions:
        probabilities = None if parts[0].probabilities is None else [p.probabilities for p in parts]
        return Predictions(
            np.concatenate([p.values for p in parts]),
            None if probabilities is None else np.concatenate(probabilities),
        )


@dataclass(frozen=True)
class Classes:
    """The classes a module or datamodule declares: their names and/or their number."""

    names: list[str] | None = None
    count: int | None = None
    counted_by: str | None = None  # a torchmetrics metric of the module that gave the count
    multi_label: bool = False  # that metric scores independent labels (a Multilabel* metric)
    labels_below: int | None = None  # nothing declared, but a batch has integer class labels, all below this


def declared_classes(module: Any, datamodule: Any = None, labels: Any = None) -> Classes:
    """The classes declared by the datamodule (``class_names``, ``num_classes``) or the module
    (``class_names`` / ``label_names``, ``num_classes`` / ``n_classes`` / ``num_labels``: attribute or
    hyperparameter), else counted by the module's torchmetrics classification metrics (``metric_classes``),
    else hinted by ``labels``, a batch's integer class labels (``forward_inputs.labels_of``)."""
    names = _first(module, datamodule, ("class_names", "label_names"))
    names = [str(name) for name in names] if isinstance(names, (list, tuple)) and names else None
    count = _first(module, datamodule, ("num_classes", "n_classes", "num_labels"))
    if names:
        count = len(names)
    elif not (isinstance(count, int) and not isinstance(count, bool) and count > 0):
        counted = metric_classes(module)
        class_labels = labels is not None and labels.ndim == 1 and len(labels) and int(labels.min()) >= 0
        if counted.count is None and class_labels:
            return Classes(labels_below=int(labels.max()) + 1)
        return counted
    return Classes(names, count)


def metric_classes(module: Any) -> Classes:
    """The classes that the module's torchmetrics classification metrics count, when they agree: a
    ``MulticlassAccuracy`` (``Accuracy(task="multiclass", num_classes=10)``) counts 10 classes, a
    ``Multilabel*`` metric ``num_labels`` independent labels. Nothing for other metrics, or metrics that
    disagree."""
    found: dict[tuple[str, int], str] = {}
    for part in module.modules() if hasattr(module, "modules") else ():
        kind = type(part)
        if not kind.__module__.startswith("torchmetrics.classification"):
            continue
        for prefix, attribute in (("Multiclass", "num_classes"), ("Multilabel", "num_labels")):
            count = getattr(part, attribute, None)
            if kind.__name__.startswith(prefix) and isinstance(count, int) and count > 0:
                found.setdefault((prefix, count), f"{kind.__name__}({attribute}={count})")
    if len(found) != 1:
        return Classes()
    ((prefix, count), metric) = found.popitem()
    return Classes(count=count, counted_by=metric, multi_label=prefix == "Multilabel")


def _first(module: Any, datamodule: Any, keys: tuple[str, ...]) -> Any:
    """The first of ``keys`` set on the datamodule, then on the module or in its ``hparams``."""
    hparams = getattr(module, "hparams", None) or {}
    for owner, key in [(datamodule, key) for key in keys] + [(module, key) for key in keys]:
        try:  # a datamodule's property may need data that is not there (not set up): then it declares nothing
            value = getattr(owner, key, None) if owner is not None else None
        except Exception:
            value = None
        if value is None and owner is module:
            value = hparams.get(key)
        if value is not None:
            return value
    return None


def declared_head(module: Any) -> str | None:
    """The module's ``output_head`` attribute, or None; ``UsageError`` for a value that is not a head."""
    head = getattr(module, ATTRIBUTE, None)
    if head is None:
        return None
    if head not in HEADS:
        raise UsageError(
            f"{type(module).__qualname__}.{ATTRIBUTE} = {head!r}; choose one of {', '.join(HEADS)}"
        )
    return head


def resolve_head(
    module: Any,
    row_shape: tuple[int, ...],
    floating: bool,
    classes: Classes,
    predict_step_sigmoid: bool = False,
    outputs: np.ndarray | None = None,
    input_rows: tuple[int, ...] | None = None,
) -> tuple[str, str]:
    """(head, why) for a module whose output has ``row_shape`` per sample: declared, else inferred;
    ``predict_step_sigmoid``: its ``predict_step`` returns sigmoid(forward) (``predict_step_relation``);
    ``outputs``: some of its output rows, to tell an L2-normalised embedding from class scores;
    ``input_rows``: the shape of forward's one input per sample, to tell a reconstruction from them."""
    owner = type(module).__qualname__
    head = declared_head(module)
    if head is not None:
        _check_fits(head, row_shape, floating, f"{owner} declares {ATTRIBUTE} = {head!r}, but")
        return head, f"declared by {owner}.{ATTRIBUTE}"
    if floating and len(row_shape) == 1 and row_shape[0] > 1 and outputs is not None and unit_rows(outputs):
        return (
            "multi_output",
            f"inferred: {row_shape[0]} values per sample of length 1 (an L2-normalised embedding, not class scores)",
        )
    reconstruction = floating and row_shape == input_rows and math.prod(row_shape) > 1
    if reconstruction and classes.count != row_shape[0]:  # declared or counted classes of that number win
        head = "multi_output" if len(row_shape) == 1 else "custom"
        return (
            head,
            f"inferred: the output has forward's input shape {row_shape} per sample (a reconstruction)",
        )
    if predict_step_sigmoid and floating and len(row_shape) == 1 and row_shape[0] > 1:
        return (
            "multi_label",
            f"inferred: {owner}.predict_step returns sigmoid(forward), one probability per label",
        )
    one_axis = floating and len(row_shape) == 1
    if classes.counted_by and one_axis and row_shape == (classes.count,):
        kind = "multi_label" if classes.multi_label else "classification"
        return kind, f"inferred: {classes.count} values per sample, as {owner}'s {classes.counted_by} counts"
    if classes.labels_below and one_axis and row_shape[0] >= max(2, classes.labels_below):
        return (
            "classification",
            f"inferred: {row_shape[0]} values per sample and integer class labels in its batches",
        )
    if floating and len(row_shape) > 1 and classes.count == row_shape[0] > 1 and not classes.multi_label:
        counted = f"as {owner}'s {classes.counted_by} counts" if classes.counted_by else "declared"
        return (
            "segmentation",
            f"inferred: {row_shape[0]} class scores per position of {row_shape[1:]} and {row_shape[0]} classes "
            f"({counted})",
        )
    head, why = infer(row_shape, floating, None if classes.counted_by else classes.count)
    return head, f"inferred: {why}"


def unit_rows(outputs: np.ndarray) -> bool:
    """Every row has L2 norm 1 and is not a probability distribution (a one-hot softmax row has norm 1 too)."""
    rows = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if not len(rows) or not np.isfinite(rows).all():
        return False
    distributions = bool((rows >= 0).all()) and bool(np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))
    return not distributions and bool(np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-3))


def infer(row_shape: tuple[int, ...], floating: bool, num_classes: int | None) -> tuple[str, str]:
    """(head, why) from the output shape per sample, its dtype and the declared number of classes."""
    if not floating:
        return "custom", "the output is not floating point"
    if len(row_shape) > 1:
        return "custom", f"the output has shape {row_shape} per sample"
    width = math.prod(row_shape)
    if width == 1:
        if num_classes == 2:
            return "classification", "one logit per sample and 2 declared classes"
        return "regression", "one value per sample"
    if num_classes == width:
        return "classification", f"{width} values per sample and {width} declared classes"
    declared = "no declared classes" if num_classes is None else f"{num_classes} declared classes"
    return "multi_output", f"{width} values per sample and {declared}"


def _check_fits(head: str, row_shape: tuple[int, ...], floating: bool, prefix: str) -> None:
    width = math.prod(row_shape)
    if (
        head in ("classification", "multi_label", "segmentation", "regression", "multi_output")
        and not floating
    ):
        raise UsageError(f"{prefix} the output is not floating point; declare 'custom'")
    if head == "regression" and width != 1:
        raise UsageError(f"{prefix} the output has {width} values per sample; declare 'multi_output'")
    if head in ("classification", "multi_label") and len(row_shape) > 1:
        per_position = "; class scores per pixel are 'segmentation'" if head == "classification" else ""
        raise UsageError(
            f"{prefix} the output has shape {row_shape} per sample, not (classes,){per_position}"
        )
    if head == "segmentation" and len(row_shape) < 2:
        raise UsageError(f"{prefix} the output has shape {row_shape} per sample, not (classes, H, W)")


def predict_step_head(head: str, outputs: np.ndarray) -> str:
    """How to read a ``predict_step`` tensor that is not forward's output: class probabilities (rows of
    values in [0, 1] summing to 1) of a classifier as they are, anything else as it is (``custom``)."""
    rows = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    distributions = (
        head == "classification"
        and rows.shape[1] > 1
        and bool(((rows >= 0) & (rows <= 1)).all())
        and bool(np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))
    )
    return PROBABILITIES if distributions else "custom"


DEFAULT_THRESHOLD = 0.5


def label_threshold(module: Any) -> tuple[float, str | None]:
    """(threshold, where it comes from) of a multi-label module's 0/1 predictions: its ``threshold``
    (attribute or hyperparameter, in (0, 1)), else the one ``threshold`` its torchmetrics ``Multilabel*``
    metrics use (``MultilabelF1Score(num_labels=5, threshold=0.3)``), else 0.5 (``None``: nothing said)."""
    hparams = getattr(module, "hparams", None) or {}
    for value, source in (
        (getattr(module, "threshold", None), f"{type(module).__qualname__}.threshold"),
        (hparams.get("threshold") if hasattr(hparams, "get") else None, "its threshold hyperparameter"),
    ):
        if isinstance(value, float | int) and not isinstance(value, bool) and 0 < value < 1:
            return float(value), source
    found = {
        float(part.threshold): f"{type(part).__name__}(threshold={part.threshold})"
        for part in (module.modules() if hasattr(module, "modules") else ())
        if type(part).__name__.startswith("Multilabel")
        and isinstance(getattr(part, "threshold", None), float)
    }
    found.pop(DEFAULT_THRESHOLD, None)  # a metric left at its default says nothing
    if len(found) == 1:
        return found.popitem()
    return DEFAULT_THRESHOLD, None


def apply_head(head: str, outputs: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> Predictions:
    """The model's outputs (N, ...) -> predictions, as ``head`` says (see the module docstring); a label is
    on where its probability is above ``threshold``."""
    outputs = np.asarray(outputs)
    if head == "segmentation":  # (N, C, H, W) -> the class of each pixel, (N, H, W)
        return Predictions(outputs.argmax(axis=1).astype(np.int64))
    rows = outputs.reshape(len(outputs), -1)  # (N, K)
    if head == PROBABILITIES:
        return Predictions(rows.argmax(axis=1), rows)
    if head == "classification":
        if rows.shape[1] == 1:  # one logit: P(class 1) = sigmoid
            positive = 1.0 / (1.0 + np.exp(-rows[:, 0]))
            probabilities = np.stack([1.0 - positive, positive], axis=1).astype(rows.dtype)
        else:
            exp = np.exp(rows - rows.max(axis=1, keepdims=True))
            probabilities = exp / exp.sum(axis=1, keepdims=True)
        return Predictions(probabilities.argmax(axis=1), probabilities)
    if head in ("multi_label", LABEL_PROBABILITIES):
        probabilities = rows if head == LABEL_PROBABILITIES else 1.0 / (1.0 + np.exp(-rows))
        return Predictions((probabilities > threshold).astype(np.int64), probabilities.astype(rows.dtype))
    if head == "regression":
        return Predictions(rows[:, 0])
    if head == "multi_output":
        return Predictions(rows)
    return Predictions(outputs)
