"""What a model's ``forward`` takes from a batch: shared by ``litforge check`` and ``litforge export``.

A dict batch (``{"features": x, "target": y}``) is matched to ``forward``'s parameter names
(``forward(features)``); labels are left out, since given labels a Hugging Face model adds a loss. A
``forward(x)`` whose name is not a key (``{"image": ..., "mask": ...}``) takes the one tensor of the batch
that can be its input (see ``_the_one_input``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

from litforge.predictions.batch_tensors import dataclass_fields, stacked_samples, zip_collated

LABEL_KEYS = ("label", "labels", "y", "target", "targets")
# Per-pixel labels of a segmentation batch, read as labels when they have a pixel grid (N, H, W, ...): a
# 2-D "mask" is more often a padding or attention mask.
DENSE_LABEL_KEYS = ("mask", "masks", "segmentation", "seg_mask", "label_mask")


def forward_inputs_from_batch(
    model: torch.nn.Module, batch: Any
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """``forward``'s ``(args, kwargs)`` taken from a real batch: the batch itself when it is a tensor, its
    first elements when it is a tuple/list (as many as ``forward`` requires: ``forward(tokens, lengths)`` on
    ``(tokens, lengths, y)``; a zip-collated ``(images, targets)``'s images stacked), the keys ``forward`` names (or ``example_input_array``'s keys) when it is a
    dict (or a dataclass: its fields); ``None`` when the batch does not say."""
    batch = _fields_or_batch(batch)
    if isinstance(batch, torch.Tensor):
        return (batch,), {}
    if isinstance(batch, (tuple, list)):
        count = positional_inputs(model)
        taken = batch[:count]
        if zip_collated(batch):  # (images, targets) of tuple(zip(*samples)): the images stacked
            taken = [stacked_samples(items) for items in taken]
        if len(taken) == count and all(isinstance(t, torch.Tensor) for t in taken):
            return tuple(taken), {}
        return None
    if not isinstance(batch, Mapping):
        return None
    example = getattr(model, "example_input_array", None)
    keys = list(example) if isinstance(example, Mapping) else _forward_keys(model, batch)
    if keys and set(keys) <= set(batch):
        return (), {key: batch[key] for key in keys}
    if not isinstance(example, Mapping) and (key := _the_one_input(model, batch, example)) is not None:
        return (batch[key],), {}
    return None


def _the_one_input(model: torch.nn.Module, batch: Mapping[str, Any], example: Any) -> str | None:
    """For a ``forward`` of one required positional parameter that names no key of the batch: the key of the
    only tensor that can be its input, one with ``example_input_array``'s rank and kind (floating or
    integer), else the only floating-point tensor; labels and per-pixel labels left out. ``None`` when that
    is not one tensor, so that a guess never picks between several."""
    if positional_inputs(model) != 1 or _forward_keys(model, batch):
        return None
    candidates = [
        key
        for key, value in batch.items()
        if isinstance(value, torch.Tensor) and key not in LABEL_KEYS and key not in DENSE_LABEL_KEYS
    ]
    if isinstance(example, torch.Tensor):
        kind = example.is_floating_point()
        candidates = [
            k for k in candidates if batch[k].ndim == example.ndim and batch[k].is_floating_point() == kind
        ]
    else:
        candidates = [key for key in candidates if batch[key].is_floating_point()]
    return candidates[0] if len(candidates) == 1 else None


def labels_of(batch: Any, inputs: int = 1) -> torch.Tensor | None:
    """The integer class labels of a batch, when it has some: ``(x, y)`` (``(tokens, lengths, y)`` for a
    ``forward`` of ``inputs`` = 2) or a dict (or dataclass) with a label key, or a per-pixel ``mask`` (N, H, W)."""
    batch = _fields_or_batch(batch)
    if isinstance(batch, (tuple, list)) and len(batch) > inputs:
        candidate = batch[inputs]
    elif isinstance(batch, Mapping):
        candidate = next((batch[k] for k in LABEL_KEYS if k in batch), None)
        if candidate is None:
            dense = (batch[k] for k in DENSE_LABEL_KEYS if k in batch)
            candidate = next((t for t in dense if isinstance(t, torch.Tensor) and t.ndim >= 3), None)
    else:
        return None
    if (
        isinstance(candidate, torch.Tensor)
        and not candidate.is_floating_point()
        and candidate.dtype != torch.bool
    ):
        return candidate
    return None


def _fields_or_batch(batch: Any) -> Any:
    """A dataclass batch as the dict of its fields (read like a dict batch), anything else as it is."""
    fields = dataclass_fields(batch)
    return batch if fields is None else fields


def positional_inputs(model: torch.nn.Module) -> int:
    """How many leading elements of a tuple batch ``forward`` takes: its required positional parameters (1
    for a ``forward(*args)`` or one whose signature cannot be read); the elements after them are labels."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return max(1, sum(1 for p in params if p.kind in kinds and p.default is p.empty))


def _forward_keys(model: torch.nn.Module, batch: Mapping[str, Any]) -> list[str]:
    """``forward``'s parameters found by name in a dict batch (``forward(x)`` on ``{"x": ..., "y": ...}``,
    ``forward(input_ids, attention_mask)`` on a tokenized batch): every required one, when the batch has
    them all, and the optional ones it has, labels aside (given labels, a Hugging Face model adds a loss)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = [p for p in inspect.signature(model.forward).parameters.values() if p.kind in kinds]
    required = [p.name for p in params if p.default is p.empty]
    optional = [p.name for p in params if p.default is not p.empty and p.name in batch]
    if not set(required) <= set(batch):
        return []
    return required + [name for name in optional if name not in LABEL_KEYS]


def forward_input_values(model: torch.nn.Module, batch: Any) -> list[Any]:
    """forward's inputs from a real batch (``forward_inputs_from_batch``), positional then keyword, in one
    list; ``[]`` when the batch does not say."""
    inputs = forward_inputs_from_batch(model, batch)
    return [*inputs[0], *inputs[1].values()] if inputs else []


def single_tensor(values: list[Any]) -> torch.Tensor | None:
    """The input when forward takes one tensor, else None."""
    return values[0] if len(values) == 1 and isinstance(values[0], torch.Tensor) else None


def forward_on_batch(module: torch.nn.Module, batch: Any) -> Any:
    """forward's output (the first of several) on a real batch, without gradients; ``None`` when the batch
    does not hold forward's inputs as litforge reads them (or forward raises on them)."""
    inputs = forward_inputs_from_batch(module, batch)
    if inputs is None:
        return None
    args, kwargs = inputs
    try:
        with torch.no_grad():
            output = module(*args, **kwargs)
    except Exception:
        return None
    return output[0] if isinstance(output, (tuple, list)) and output else output


def predict_step_relation(module: torch.nn.Module, batch: Any, prediction: Any) -> str:
    """What a ``predict_step`` tensor is, checked once on a real batch by running forward on it:
    ``"forward"`` (forward's output: always for Lightning's own ``predict_step``, and when forward cannot be
    called from the batch, the documented rule), ``"sigmoid"`` (the sigmoid of forward's several outputs
    per sample: a multi-label model's probabilities) or ``"other"``."""
    import lightning as L
    from lightning.pytorch.utilities.model_helpers import is_overridden

    if not is_overridden("predict_step", module, parent=L.LightningModule):
        return "forward"
    reference = forward_on_batch(module, batch) if isinstance(prediction, torch.Tensor) else None
    if reference is None:  # forward cannot be called from the batch: the documented rule
        return "forward"
    if not isinstance(reference, torch.Tensor) or reference.shape != prediction.shape:
        return "other"
    reference, prediction = reference.float(), prediction.float()
    if torch.allclose(reference, prediction, rtol=1e-4, atol=1e-6):
        return "forward"
    several = reference.ndim == 2 and reference.shape[1] > 1
    if several and torch.allclose(torch.sigmoid(reference), prediction, rtol=1e-4, atol=1e-6):
        return "sigmoid"
    return "other"
