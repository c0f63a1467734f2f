"""The tensors of a user's batch, each with its path, and whether forward's inputs share a batch axis.

Batches come as tensors, tuples, lists, dicts (a tokenizer's ``BatchEncoding`` too) and dataclasses (a
hand-written graph batch, ``GraphBatch(x, edge_index, batch, y)``), nested; Lightning moves and measures all
of them, and so does litforge: the NaN-loss diagnosis, ``check``'s data check, ``export``'s real batch and
the performance summary's sample count read batches through this module.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import torch


def dataclass_fields(batch: Any) -> dict[str, Any] | None:
    """A dataclass batch's fields by name (``{"x": ..., "edge_index": ..., ...}``); None for anything else."""
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return {field.name: getattr(batch, field.name) for field in dataclasses.fields(batch)}
    return None


def named_tensors(batch: Any, where: str = "batch") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in ``batch`` with the path to it: ``batch[1]``, ``batch['labels']``, ``batch.x``."""
    if isinstance(batch, torch.Tensor):
        yield where, batch
        return
    if (fields := dataclass_fields(batch)) is not None:
        items = [(f"{where}.{name}", value) for name, value in fields.items()]
    elif isinstance(batch, Mapping):
        items = [(f"{where}[{key!r}]", value) for key, value in batch.items()]
    elif isinstance(batch, (list, tuple)):
        items = [(f"{where}[{index}]", value) for index, value in enumerate(batch)]
    else:
        return
    for name, value in items:
        yield from named_tensors(value, name)


def shared_first_axis(tensors: Any) -> int | None:
    """The length of axis 0 that every tensor in ``tensors`` (any nesting; scalars aside) has, or None when
    they disagree (a packed graph batch: nodes, edges and graphs) or hold no such tensor."""
    lengths = {int(t.shape[0]) for _, t in named_tensors(tensors) if t.ndim}
    return lengths.pop() if len(lengths) == 1 else None


def zip_collated(batch: Any) -> int | None:
    """N for a batch collated as ``tuple(zip(*samples))`` (torchvision's detection convention): a tuple or
    list whose every element is a tuple or list of N per-sample items, one of them N target dicts. (A
    multi-task ``((x_a, x_b), (y_a, y_b))`` or a list of ``(x, y)`` samples holds no dicts: not one.)"""
    if not isinstance(batch, (tuple, list)) or not batch:
        return None
    lengths = {len(part) if isinstance(part, (tuple, list)) else -1 for part in batch}
    if len(lengths) != 1 or min(lengths) < 1:
        return None
    targets = any(all(isinstance(item, Mapping) for item in part) for part in batch)
    return lengths.pop() if targets else None


def stacked_samples(items: Any) -> torch.Tensor | None:
    """Per-sample tensors of one shape and dtype (a zip-collated batch's images) stacked on a new axis 0,
    as a default collate would stack them; None for anything else (targets of varying size)."""
    if (
        not isinstance(items, (tuple, list))
        or not items
        or not all(isinstance(t, torch.Tensor) for t in items)
    ):
        return None
    if len({(t.shape, t.dtype) for t in items}) != 1:
        return None
    return torch.stack(list(items))


def sample_count(batch: Any) -> int | None:
    """How many samples a batch holds: N of a zip-collated one, else the axis 0 its tensors share."""
    return zip_collated(batch) or shared_first_axis(batch)


def packed_inputs(module: torch.nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    """``"x (417, 8), edge_index (2, 920), batch (417,)"`` when forward's input tensors share no axis 0, as a
    packed graph batch's do; None when they share one (one row per sample), or forward takes one tensor."""
    try:
        names = [
            p.name
            for p in inspect.signature(module.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        names = []
    named = [
        *((names[i] if i < len(names) else f"input {i}", t) for i, t in enumerate(args)),
        *kwargs.items(),
    ]
    tensors = [(name, t) for name, t in named if isinstance(t, torch.Tensor)]
    if len(tensors) < 2 or shared_first_axis([t for _, t in tensors]) is not None:
        return None
    return ", ".join(f"{name} {tuple(t.shape)}" for name, t in tensors)


PACKED_EXPORT = (
    "an export answers each request row with one output row, so forward's inputs need one row per sample on "
    "axis 0: give every input the same batch size, and pad packed inputs (a graph batch's nodes and edges) "
    "to one size per sample (x (graphs, nodes, features), adj (graphs, nodes, nodes), a bool mask (graphs, "
    "nodes)): docs/export.md, 'Packed inputs'"
)
