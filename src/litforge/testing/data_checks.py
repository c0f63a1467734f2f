"""The data check: batch structure, shapes and dtypes stable from batch to batch, labels in range, no
NaN/inf in the inputs."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache, partial
from itertools import islice
from typing import Any

import torch

from litforge.predictions.batch_tensors import named_tensors, packed_inputs, stacked_samples, zip_collated
from litforge.predictions.forward_inputs import (
    forward_inputs_from_batch,
    forward_on_batch,
    labels_of,
    positional_inputs,
)
from litforge.testing.subject import (
    IGNORE_INDEX,
    DataLike,
    ModelLike,
    Subject,
    as_subject,
    first_line,
    seeded,
    shape_text,
)


def _entries(batch: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``({"batch[0]": x, "batch[1]": y}, {})``, ``{"batch['input_ids']": ...}``, ``{"batch.x": ...}``: every
    tensor by its path; and the per-sample tensors of a zip-collated batch (a detector's target dicts, of as
    many boxes as each image has), whose shapes vary by design, apart: its images count stacked."""
    if not zip_collated(batch):
        return dict(named_tensors(batch)), {}
    entries, per_sample = {}, {}
    for index, items in enumerate(batch):
        if (stacked := stacked_samples(items)) is not None:
            entries[f"batch[{index}]"] = stacked
        else:
            per_sample.update(named_tensors(items, f"batch[{index}]"))
    return entries, per_sample


def _signature(tensor: torch.Tensor) -> tuple[Any, ...]:
    """What must not change between batches: dtype, rank and, for floating inputs, the per-sample shape.
    Integer tensors (token ids, masks) may change length between batches (dynamic padding)."""
    per_sample = tuple(tensor.shape[1:]) if tensor.is_floating_point() else ()
    return tensor.dtype, tensor.ndim, per_sample


def check_data(model: ModelLike | Subject, data: DataLike = None, *, max_batches: int = 20) -> str:
    """Up to ``max_batches`` batches of each loader: same structure, dtypes and per-sample shapes as the
    first (a loader whose batches hold other entries, such as training triplets beside validation pairs, as
    its own first), one batch size across a batch's tensors, finite floats, labels in ``[0, num_classes)``."""
    subject = as_subject(model, data)
    num_classes = subject.num_classes
    counts, label_range = [], [None, None]
    train_labels: list[torch.Tensor] = []
    first: dict[str, torch.Tensor] | None = None
    loose: list[str] = []  # a zip-collated batch's per-sample entries (a detector's targets)
    takes_any_length = cache(partial(declares_sequences, subject.prototype))  # its export spec, asked once
    loaders = subject.loaders()
    with seeded(subject.seed):  # the same shuffled batches whatever ran before
        splits = {split: list(islice(loader, max_batches)) for split, loader in _each_loader(loaders)}
    first_batch = next((batches[0] for batches in splits.values() if batches), None)
    packed = _packed(subject.prototype, first_batch)
    if splits.get("train") and not packed:
        _check_last_train_batch(loaders["train"], splits["train"][0], subject.prototype)
    varying: set[str] = set()  # entries padded per batch, of a module whose export spec names no such axis
    own_layouts = []  # splits whose batches hold other entries than training's (triplets to train on, pairs to score)
    for split, batches in splits.items():
        count, reference = 0, first
        for index, batch in enumerate(batches):
            where = f"{split} batch {index}"
            entries, per_sample = _entries(batch)
            _check_values(where, per_sample)
            if not entries and not per_sample:
                raise AssertionError(f"{where} is a {type(batch).__name__} with no tensors")
            if first is None:
                first = reference = entries
                loose = sorted({re.sub(r"^(batch\[\d+\])\[\d+\]", r"\1[i]", path) for path in per_sample})
                _check_input_dtypes(where, batch, entries, subject.prototype)
            elif index == 0 and set(entries) != set(first):  # compared with its own first batch
                reference = entries
                own_layouts.append(
                    f"{split}: " + ", ".join(f"{p} {shape_text(t)}" for p, t in entries.items())
                )
            varying |= _compare(where, entries, reference, takes_any_length, packed=bool(packed))
            _check_values(where, entries)
            labels = labels_of(batch, positional_inputs(subject.prototype))
            if labels is not None:
                _check_labels(where, labels, num_classes, label_range)
                if split == "train":
                    train_labels.append(labels.flatten())
            count += 1
        counts.append(f"{count} {split}")
    assert first is not None
    layout = ", ".join(f"{path} {shape_text(t)}" for path, t in first.items())
    labels_text = (
        f"; labels in [{label_range[0]}, {label_range[1]}]"
        + (f" of {num_classes} classes" if num_classes else "")
        + _class_shares(train_labels)
        if label_range[0] is not None
        else "; no class labels in the batch"
    )
    others = "".join(f"; {each}" for each in own_layouts)
    padded = (
        f"; axis 1 of {', '.join(sorted(varying))} varies between batches (padding; an export takes one length "
        "unless litforge_export_spec() declares {1: 'sequence'})"
        if varying
        else ""
    )
    packing = f"; packed inputs ({packed}: no shared batch axis)" if packed else ""
    packing += f"; per sample, of varying shapes: {', '.join(loose)}" if loose else ""
    return f"{' + '.join(counts)} batches: {layout}{others}{labels_text}{padded}{packing}"


def _packed(module: Any, batch: Any) -> str | None:
    """forward's inputs in ``batch`` when they share no axis 0 (a graph batch's nodes, edges and node-to-graph
    index): their tensors then disagree on a batch size by design."""
    inputs = forward_inputs_from_batch(module, batch) if batch is not None else None
    return packed_inputs(module, *inputs) if inputs is not None else None


def _each_loader(loaders: dict[str, Any]) -> Iterator[tuple[str, Iterable[Any]]]:
    """``(name, loader)`` for each loader: validation's list or dict of loaders (Lightning runs each one,
    ``val_loss/dataloader_idx_0``, ...) as ``val[0]``, ``val[1]`` or ``val[clean]``, not as one loader."""
    for split, loader in loaders.items():
        if split != "train" and isinstance(loader, (list, tuple)):
            yield from ((f"{split}[{index}]", each) for index, each in enumerate(loader))
        elif split != "train" and isinstance(loader, Mapping):
            yield from ((f"{split}[{key}]", each) for key, each in loader.items())
        else:
            yield split, loader


def _compare(
    where: str,
    entries: dict[str, torch.Tensor],
    first: dict[str, torch.Tensor],
    takes_any_length: Callable[[], bool],
    *,
    packed: bool = False,
) -> set[str]:
    """Refuse a batch whose entries differ from ``first`` but for axis 1's length (padding to each batch's
    longest item), or whose tensors disagree on the batch size (unless forward's inputs are ``packed``);
    return the entries whose length differs, for a module whose export spec does not say it takes any
    length."""
    varying: set[str] = set()
    if set(entries) != set(first):
        raise AssertionError(f"{where} has entries {sorted(entries)}, the first batch had {sorted(first)}")
    sizes = {path: t.shape[0] for path, t in entries.items() if t.ndim}
    if len(set(sizes.values())) > 1 and not packed:
        raise AssertionError(f"{where}: tensors disagree on the batch size: {sizes}")
    for path, tensor in entries.items():
        if _signature(tensor) == _signature(first[path]):
            continue
        if _only_length_differs(tensor, first[path]):  # padded to each batch's longest item
            if not takes_any_length():
                varying.add(path)
            continue
        raise AssertionError(
            f"{where}: {path} is {shape_text(tensor)}, the first batch had {shape_text(first[path])}"
        )
    return varying


def _only_length_differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype and rank, and the per-sample shapes differ on axis 1 alone (a sequence's length)."""
    return a.dtype == b.dtype and a.ndim == b.ndim >= 2 and a.shape[2:] == b.shape[2:]


def declares_sequences(model: Any) -> bool:
    """Whether the module's ``litforge_export_spec()`` declares an axis 1 dynamic (inputs of any length)."""
    hook = getattr(model, "litforge_export_spec", None)
    try:
        axes = (hook() if callable(hook) else {}).get("dynamic_axes") or {}
        return any(1 in {int(axis) for axis in by_axis} for by_axis in axes.values())
    except Exception:  # the hook fails without its assets here: it declares nothing this check can use
        return False


_BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)


def _check_last_train_batch(loader: Any, batch: Any, module: Any) -> None:
    """A training epoch whose last batch holds one sample crashes a module whose BatchNorm then sees one
    value per channel ("Expected more than 1 value per channel when training"), however the first batches
    look: found from the loader's dataset length and batch size, and tried on one sample of ``batch``."""
    batch_size, drop_last = getattr(loader, "batch_size", None), getattr(loader, "drop_last", True)
    try:
        samples = len(loader.dataset)
    except (AttributeError, TypeError):  # an iterable dataset, or not a DataLoader
        return
    if not batch_size or drop_last or samples % batch_size != 1 or samples == 1:
        return
    if not any(isinstance(part, _BATCH_NORMS) for part in module.modules()):
        return
    inputs = forward_inputs_from_batch(module, batch)
    if inputs is None:
        return
    one = ([t[:1] for t in inputs[0]], {k: t[:1] for k, t in inputs[1].items()})
    try:
        copy.deepcopy(module).train()(*one[0], **one[1])
    except ValueError as error:
        if "Expected more than 1 value per channel" not in str(error):
            return
        raise AssertionError(
            f"the training loader's last batch holds 1 sample ({samples} samples in batches of {batch_size}), "
            f"and forward in training mode fails on one sample ({first_line(error)}): every epoch would end "
            "there; pass drop_last=True to the DataLoader or change the batch size"
        ) from None
    except Exception:  # forward needs more than litforge reads from the batch: other checks say so
        return


def _check_input_dtypes(where: str, batch: Any, entries: dict[str, torch.Tensor], module: Any) -> None:
    """forward's floating inputs in the dtype of the module's parameters, or a forward that converts them
    itself: a float64 column from numpy (``torch.from_numpy`` keeps float64) fails in forward as 'mat1 and
    mat2 must have the same dtype', and every later check with it."""
    expected = next((p.dtype for p in module.parameters() if p.is_floating_point()), None)
    inputs = forward_inputs_from_batch(module, batch)
    if expected is None or inputs is None:
        return
    for tensor in (*inputs[0], *inputs[1].values()):
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.dtype != expected:
            if forward_on_batch(copy.deepcopy(module).eval(), batch) is not None:
                return  # forward converts its inputs (x.float()) itself
            path = next((p for p, t in entries.items() if t is tensor), "an input")
            raise AssertionError(
                f"{where}: {path} is {str(tensor.dtype).removeprefix('torch.')} but the model's parameters are "
                f"{str(expected).removeprefix('torch.')}: convert it in the dataset (.float(), or "
                "np.float32 before torch.from_numpy)"
            )


def _check_values(where: str, entries: dict[str, torch.Tensor]) -> None:
    for path, tensor in entries.items():
        if tensor.is_floating_point():
            bad = ~torch.isfinite(tensor)
            if bad.any():
                nans = int(torch.isnan(tensor).sum())
                raise AssertionError(
                    f"{where}: {path} has {nans} NaN and {int(bad.sum()) - nans} inf of {tensor.numel()} values"
                )


def _class_shares(labels: list[torch.Tensor]) -> str:
    """``; training batches read: class 0 61%, 1 24%, 2 10%, 3 5%`` (the smallest and largest of more than
    ten classes): an imbalance to weigh the loss or pick a macro metric for, seen before training."""
    valid = torch.cat(labels)[torch.cat(labels) != IGNORE_INDEX] if labels else torch.empty(0)
    if valid.numel() == 0 or int(valid.min()) < 0 or int(valid.max()) >= 1000:  # ids, not classes
        return ""
    shares = torch.bincount(valid) / valid.numel()
    if len(shares) <= 10:
        listed = ", ".join(f"{index} {100 * share:.0f}%" for index, share in enumerate(shares.tolist()))
        return f"; training batches read: class {listed}"
    low, high = int(shares.argmin()), int(shares.argmax())
    return (
        f"; training batches read: class shares from {100 * float(shares[low]):.1f}% (class {low}) to "
        f"{100 * float(shares[high]):.1f}% (class {high})"
    )


def _check_labels(where: str, labels: torch.Tensor, num_classes: int | None, seen: list[Any]) -> None:
    valid = labels[labels != IGNORE_INDEX]
    if valid.numel() == 0:
        return
    low, high = int(valid.min()), int(valid.max())
    seen[0] = low if seen[0] is None else min(seen[0], low)
    seen[1] = high if seen[1] is None else max(seen[1], high)
    if low < 0 or (num_classes is not None and high >= num_classes):
        expected = f"0..{num_classes - 1} (num_classes={num_classes})" if num_classes else ">= 0"
        regression = (
            "" if num_classes else " (if they are a regression's targets, make them float: y.float())"
        )
        raise AssertionError(f"{where}: labels span [{low}, {high}], expected {expected}{regression}")
