"""Which values an export's integer input takes, recorded at export and checked before the runtime sees them.

A token-id input that feeds an ``nn.Embedding`` directly is recorded in export.json as
``"range": [0, num_embeddings - 1]``: an id outside it is refused by ``serve`` (422) and ``predict --artifact``
(exit 2) instead of failing inside the runtime (a traceback, a 500) or, in ONNX, silently wrapping -1 to the
last row. Other integer inputs take whole numbers within their dtype.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # serve imports this module, and an ONNX server never loads torch
    import torch


def embedding_ranges(
    module: torch.nn.Module, names: list[str], inputs: tuple[torch.Tensor, ...]
) -> dict[str, list[int]]:
    """Input name -> ``[0, num_embeddings - 1]`` for each integer input an ``nn.Embedding`` looks up as given
    (the smallest table when several do), found by one eager forward with pre-hooks on the embeddings.

    A table per column (``tables[i](cat[:, i])``) looks up views of the input: the input then takes
    ``[0, largest table - 1]``. Its lower bound is what counts (ONNX's Gather reads a negative id from the
    end of the table without a word); an id past a smaller column's table is refused by the runtime."""
    import torch

    integer = {
        name: tensor
        for name, tensor in zip(names, inputs, strict=True)
        if not tensor.is_floating_point() and tensor.dtype is not torch.bool
    }
    embeddings = [m for m in module.modules() if isinstance(m, torch.nn.Embedding)]
    if not integer or not embeddings:
        return {}
    whole: dict[str, int] = {}  # the smallest table that looks up the input itself
    columns: dict[str, int] = {}  # the largest table that looks up a view of it

    def record(embedding: torch.nn.Embedding, args: tuple[Any, ...]) -> None:
        looked_up = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if looked_up is None:
            return
        size = embedding.num_embeddings
        for name, tensor in integer.items():
            if _same_layout(looked_up, tensor):
                whole[name] = min(whole.get(name, size), size)
            elif looked_up.untyped_storage().data_ptr() == tensor.untyped_storage().data_ptr():
                columns[name] = max(columns.get(name, size), size)

    handles = [embedding.register_forward_pre_hook(record) for embedding in embeddings]
    try:
        with torch.inference_mode():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {name: [0, size - 1] for name, size in {**columns, **whole}.items()}


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a.data_ptr(), tuple(a.shape), a.stride()) == (b.data_ptr(), tuple(b.shape), b.stride())


BOOL_BOUNDS = (0, 1)  # what a bool input takes


def integer_bounds(input_spec: dict[str, Any]) -> tuple[int, int] | None:
    """``(lowest, highest)`` value of an integer input (export.json's ``range``, else its dtype's); ``None``
    for a floating-point input."""
    dtype = np.dtype(input_spec["dtype"])
    if dtype == np.bool_:
        return BOOL_BOUNDS  # a mask: 0 or 1 (2 or 0.5 read as true was let through)
    if not np.issubdtype(dtype, np.integer):
        return None
    recorded = input_spec.get("range")
    if isinstance(recorded, list) and len(recorded) == 2:
        return int(recorded[0]), int(recorded[1])
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def value_problem(value: float | int, bounds: tuple[int, int]) -> str | None:
    """Why one number cannot go to an integer input with ``bounds``, or ``None`` when it can."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number (the model takes {_takes(bounds)})"
    if isinstance(value, float) and not value.is_integer():
        return f"{value!r} is not a whole number (the model takes {_takes(bounds)})"
    if not bounds[0] <= value <= bounds[1]:
        return f"{value!r} is out of range (the model takes {_takes(bounds)})"
    return None


def first_bad_id(rows: np.ndarray, bounds: tuple[int, int]) -> tuple[int, str] | None:
    """The first row of a numeric array holding a value an integer input with ``bounds`` does not take, and
    why; compared in the array's own dtype, so a uint64 beyond int64 is reported as written."""
    flat = rows.reshape(len(rows), -1)
    whole = np.ones(flat.shape, bool) if np.issubdtype(flat.dtype, np.integer) else np.floor(flat) == flat
    bad = ~whole | (flat < bounds[0]) | (flat > bounds[1])
    if not bad.any():
        return None
    row, column = np.argwhere(bad)[0]
    value = flat[row, column].item()
    return int(row), str(value_problem(value, bounds))


def _takes(bounds: tuple[int, int]) -> str:
    low, high = bounds
    if bounds == BOOL_BOUNDS:
        return "0 or 1, false or true"
    if bounds == (0, 255):  # uint8: raw pixels more often than ids
        return "values 0..255"
    return f"ids {low}..{high}" if low == 0 and high < np.iinfo(np.int32).max else "whole numbers"
