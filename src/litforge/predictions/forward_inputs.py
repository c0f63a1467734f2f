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
    first element when it is a tuple/list, the keys ``forward`` names (or ``example_input_array``'s keys)
    when it is a dict; ``None`` when the batch does not say."""
    if isinstance(batch, torch.Tensor):
        return (batch,), {}
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return (batch[0],), {}
    if not isinstance(batch, Mapping):
        return None
    example = getattr(model, "example_input_array", None)
    keys = list(example) if isinstance(example, Mapping) else _forward_keys(model, batch)
    if keys and set(keys) <= set(batch):
        return (), {key: batch[key] for key in keys}
    return None


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
