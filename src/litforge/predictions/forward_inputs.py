"""What a model's ``forward`` takes from a batch: shared by ``litforge check`` and ``litforge export``.

A dict batch (``{"features": x, "target": y}``) is matched to ``forward``'s parameter names
(``forward(features)``); labels are left out, since given labels a Hugging Face model adds a loss.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

LABEL_KEYS = ("label", "labels", "y", "target", "targets")


def forward_inputs_from_batch(
    model: torch.nn.Module, batch: Any
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """``forward``'s ``(args, kwargs)`` taken from a real batch: the batch itself when it is a tensor, its
    first elements when it is a tuple/list (as many as ``forward`` requires: ``forward(tokens, lengths)`` on
    ``(tokens, lengths, y)``), the keys ``forward`` names (or ``example_input_array``'s keys) when it is a
    dict; ``None`` when the batch does not say."""
    if isinstance(batch, torch.Tensor):
        return (batch,), {}
    if isinstance(batch, (tuple, list)):
        count = positional_inputs(model)
        taken = batch[:count]
        if len(taken) == count and all(isinstance(t, torch.Tensor) for t in taken):
            return tuple(taken), {}
        return None
    if not isinstance(batch, Mapping):
        return None
    example = getattr(model, "example_input_array", None)
    keys = list(example) if isinstance(example, Mapping) else _forward_keys(model, batch)
    if keys and set(keys) <= set(batch):
        return (), {key: batch[key] for key in keys}
    return None


def labels_of(batch: Any, inputs: int = 1) -> torch.Tensor | None:
    """The integer class labels of a batch, when it has some: ``(x, y)`` (``(tokens, lengths, y)`` for a
    ``forward`` of ``inputs`` = 2) or a dict with a label key."""
    if isinstance(batch, (tuple, list)) and len(batch) > inputs:
        candidate = batch[inputs]
    elif isinstance(batch, Mapping):
        candidate = next((batch[k] for k in LABEL_KEYS if k in batch), None)
    else:
        return None
    if (
        isinstance(candidate, torch.Tensor)
        and not candidate.is_floating_point()
        and candidate.dtype != torch.bool
    ):
        return candidate
    return None


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


def predict_step_relation(module: torch.nn.Module, batch: Any, prediction: Any) -> str:
    """What a ``predict_step`` tensor is, checked once on a real batch by running forward on it:
    ``"forward"`` (forward's output: always for Lightning's own ``predict_step``, and when forward cannot be
    called from the batch, the documented rule), ``"sigmoid"`` (the sigmoid of forward's several outputs
    per sample: a multi-label model's probabilities) or ``"other"``."""
    import lightning as L
    from lightning.pytorch.utilities.model_helpers import is_overridden

    if not is_overridden("predict_step", module, parent=L.LightningModule):
        return "forward"
    inputs = forward_inputs_from_batch(module, batch)
    if inputs is None or not isinstance(prediction, torch.Tensor):
        return "forward"
    args, kwargs = inputs
    try:
        with torch.no_grad():
            reference = module(*args, **kwargs)
    except Exception:  # the batch does not hold forward's inputs as litforge reads them: the documented rule
        return "forward"
    if isinstance(reference, (tuple, list)) and reference:
        reference = reference[0]
    if not isinstance(reference, torch.Tensor) or reference.shape != prediction.shape:
        return "other"
    reference, prediction = reference.float(), prediction.float()
    if torch.allclose(reference, prediction, rtol=1e-4, atol=1e-6):
        return "forward"
    several = reference.ndim == 2 and reference.shape[1] > 1
    if several and torch.allclose(torch.sigmoid(reference), prediction, rtol=1e-4, atol=1e-6):
        return "sigmoid"
    return "other"
