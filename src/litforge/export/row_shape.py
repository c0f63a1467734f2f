"""The inputs of a features export as rows (``FeatureInput``: name, row shape, dtype, ids), and one input row's
shape as ``export.json`` records it (the input's shape without the batch axis): a size per
fixed axis and the axis's name where it is dynamic, e.g. ``(3, 16, 16)``, ``("sequence",)`` (token ids of any
length) or ``("sequence", 8)`` (any number of 8-wide steps). Rows arrive flat (a CSV line, a JSON list) or
nested; ``concrete`` says what shape a flat row of N values has.

concrete(("sequence", 8), 24)  # (3, 8)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from litforge.errors import UsageError
from litforge.export.input_values import integer_bounds

RowShape = tuple[int | str, ...]


@dataclass(frozen=True)
class FeatureInput:
    """One positional input of ``forward`` as rows of numbers: its ``export.json`` name, row shape and dtype,
    and the lowest and highest value it takes when it is an integer input (token ids: the embedding's rows)."""

    name: str
    shape: RowShape
    dtype: str
    bounds: tuple[int, int] | None = None
    features: tuple[str, ...] | None = None  # the names of a row's values (litforge.export.feature_names)


def feature_inputs(record: dict[str, Any], where: str) -> tuple[FeatureInput, ...]:
    """``export.json``'s inputs as rows; ``UsageError`` for one with two dynamic axes (``input_row_shape``)."""
    return tuple(
        FeatureInput(
            str(entry["name"]),
            input_row_shape(entry, where),
            str(entry["dtype"]),
            integer_bounds(entry),
            _features(entry),
        )
        for entry in record.get("inputs") or []
    )


def _features(entry: dict[str, Any]) -> tuple[str, ...] | None:
    names = entry.get("features")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return None
    return (
        tuple(names) if len(names) == math.prod(s for s in entry["shape"][1:] if isinstance(s, int)) else None
    )


def input_row_shape(entry: dict[str, Any], where: str) -> RowShape:
    """The row shape of one ``export.json`` input; ``UsageError`` for more than one dynamic axis besides the
    batch (rows of numbers cannot say how their values split between two unknown lengths)."""
    shape = tuple(size if isinstance(size, int) else str(size) for size in entry["shape"][1:])
    dynamic = [size for size in shape if isinstance(size, str)]
    if len(dynamic) > 1:
        raise UsageError(
            f"{where}: input '{entry.get('name')}' has rows of shape {list(shape)}, with {len(dynamic)} dynamic "
            "axes; rows of numbers can fill one: export with at most one dynamic axis besides the batch"
        )
    return shape


def is_dynamic(shape: RowShape) -> bool:
    return any(isinstance(size, str) for size in shape)


def step(shape: RowShape) -> int:
    """Values per step of the dynamic axis (all values of a row when there is none)."""
    return math.prod(size for size in shape if isinstance(size, int))


def concrete(shape: RowShape, values: int) -> tuple[int, ...] | None:
    """The shape of a row of ``values`` numbers, its dynamic axis filled in; ``None`` when it cannot be."""
    if not is_dynamic(shape):
        return shape if values == step(shape) else None  # type: ignore[return-value]
    if values <= 0 or values % step(shape):
        return None
    return tuple(values // step(shape) if isinstance(size, str) else size for size in shape)


def takes(shape: RowShape) -> str:
    """How many values a row holds, for messages: ``64``, ``a multiple of 8``, ``1 or more``."""
    if not is_dynamic(shape):
        return str(step(shape))
    return f"a multiple of {step(shape)}" if step(shape) > 1 else "1 or more"


def axis_mismatch(shapes: dict[str, tuple[RowShape, tuple[int, ...]]]) -> str | None:
    """For ``{input name: (row shape, one concrete row's shape)}``: which inputs disagree on the length of a
    dynamic axis they share (``x`` and ``mask`` both along ``sequence``), as ``x has sequence 6 and mask has
    5``; ``None`` when they agree."""
    seen: dict[str, tuple[str, int]] = {}
    for name, (shape, concrete_shape) in shapes.items():
        for axis, size in zip(shape, concrete_shape, strict=True):
            if not isinstance(axis, str):
                continue
            if axis in seen and seen[axis][1] != size:
                return f"{seen[axis][0]} has {axis} {seen[axis][1]} and {name} has {size}"
            seen.setdefault(axis, (name, size))
    return None
