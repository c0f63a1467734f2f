"""What to trace: a module's example inputs, their names and dynamic axes (the export extension contract).

A LightningModule MAY define ``litforge_export_spec(self) -> dict`` with the keys

- ``inputs``: tuple of example tensors (the positional arguments of ``forward``);
- ``input_names``: list of names, one per input;
- ``output_names``: list of names, one per output (default: ``["logits"]`` for class scores, ``["output"]`` for
  other heads, a dict's keys or ``output_0...`` for several: ``litforge.export.outputs``);
- ``dynamic_axes``: ``{input_name: {axis: axis_name}}``, e.g. ``{"input_ids": {0: "batch", 1: "sequence"}}``;
- ``request_format``: ``"features"`` (rows of numbers, the default) or ``"texts"`` (the server tokenizes
  with ``AutoTokenizer.from_pretrained(<export_dir>/tokenizer)``);
- ``save_assets``: ``callable(out_dir: pathlib.Path) -> None`` writing extra files (the tokenizer that a
  ``"texts"`` export needs);
- ``max_length``: the number of tokens a text is truncated to, as in training (``"texts"``; default: the
  datamodule's ``max_length``, else the tokenizer's own limit);
- ``feature_names``: the names of the one input's values per row (a tabular model's columns), so rows are
  read by name (``litforge.export.feature_names``).

Without the hook, ``example_input_array`` is used with a dynamic batch axis 0 (one tensor, or a tuple of
them for a ``forward`` of several inputs, named after its parameters, or a dict of them by those names), or
else one batch from the run's datamodule.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from litforge.errors import UsageError
from litforge.predictions.batch_tensors import PACKED_EXPORT, packed_inputs, shared_first_axis

REQUEST_FORMATS = ("features", "texts")


@dataclass
class ExportSpec:
    """Example inputs and naming of one exportable module (see the module docstring)."""

    inputs: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str] | None = None  # None: named as ``litforge.export.outputs`` says
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    request_format: str = "features"
    save_assets: Callable[[Path], None] | None = None
    feature_names: list[str] | None = None  # declared by litforge_export_spec()
    max_length: int | None = None  # tokens a text is truncated to ("texts")

    def row_widths(self) -> list[int] | None:
        """Values per row of each input, when every input's rows have a fixed size (a features model's
        columns, also split over several inputs: ``forward(categories, numbers)``)."""
        if self.request_format != "features":
            return None
        if any(set(self.dynamic_axes.get(name, {})) - {0} for name in self.input_names):
            return None
        if not all(len(tensor) for tensor in self.inputs):
            return None
        return [int(tensor[0].numel()) for tensor in self.inputs]

    def dynamic_shapes(self) -> tuple[dict[int, Any], ...]:
        """``dynamic_axes`` as ``torch.export`` dynamic shapes: ``Dim.DYNAMIC`` per named axis, so torch infers
        each axis's range (a BERT's sequence axis stops at its 512 positions) and fails if the graph
        would fix an axis the spec calls dynamic."""
        return tuple(
            {int(axis): torch.export.Dim.DYNAMIC for axis in self.dynamic_axes.get(name, {})}
            for name in self.input_names
        )

    def describe_inputs(
        self, ranges: dict[str, list[int]] | None = None, features: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Names, dtypes and shapes (dynamic axes by name) for ``export.json``, plus the ``range`` of ids an
        integer input takes where it is known (``litforge.export.input_values``) and each input's share of
        the ``features`` (``litforge.export.feature_names``), in the order of the inputs."""
        described = []
        widths = self.row_widths() if features else None
        starts = [sum(widths[:index]) for index in range(len(widths) + 1)] if widths else []
        for index, (name, tensor) in enumerate(zip(self.input_names, self.inputs, strict=True)):
            shape = [
                self.dynamic_axes.get(name, {}).get(axis, size) for axis, size in enumerate(tensor.shape)
            ]
            entry: dict[str, Any] = {
                "name": name,
                "dtype": str(tensor.dtype).removeprefix("torch."),
                "shape": shape,
            }
            if ranges and name in ranges:
                entry["range"] = ranges[name]
            if features and starts and starts[-1] == len(features):
                entry["features"] = features[starts[index] : starts[index + 1]]
            described.append(entry)
        return described


def export_spec(
    module: torch.nn.Module,
    data_batch: torch.Tensor | None = None,
    data_inputs: tuple[torch.Tensor, ...] | None = None,
) -> ExportSpec:
    """The module's ``litforge_export_spec()``, else its ``example_input_array``, else ``data_batch``
    (one batch of inputs from its datamodule), else ``data_inputs`` (forward's several inputs from one
    batch: a tuple's first tensors, a dict's entries named like forward's parameters)."""
    hook = getattr(module, "litforge_export_spec", None)
    if callable(hook):
        return _from_hook(type(module).__name__, hook())
    example = getattr(module, "example_input_array", None)
    if isinstance(example, (tuple, list)) and len(example) == 1:
        example = example[0]
    if isinstance(example, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in example):
        return _positional_inputs(module, tuple(example))
    if (
        isinstance(example, Mapping)
        and example
        and all(isinstance(t, torch.Tensor) for t in example.values())
    ):
        return _positional_inputs(module, _in_forward_order(module, dict(example)))
    if not isinstance(example, torch.Tensor) and data_batch is not None and len(data_batch) >= 2:
        example = data_batch[:2]  # batch of 2: torch.export specialises sizes 0 and 1
    several = (
        data_inputs is not None and len(data_inputs) >= 2 and all(t.ndim and len(t) >= 2 for t in data_inputs)
    )
    if example is None and several:
        _refuse_packed(module, tuple(data_inputs), "its datamodule's batches hold")
        return _positional_inputs(module, tuple(tensor[:2] for tensor in data_inputs))
    if not isinstance(example, torch.Tensor):
        raise UsageError(
            f"{type(module).__name__} cannot be exported: set `self.example_input_array` to one example "
            "input tensor (batch axis first), or a tuple of them for a forward of several inputs, or define "
            "`litforge_export_spec()`; a run's datamodule stands in when it loads and its batches hold forward's "
            "inputs"
        )
    if data_batch is not None and is_stale_example(module, example, data_batch):
        # the artifact would take only the example's row shape: the model's real inputs would be refused
        raise UsageError(
            f"{type(module).__name__}.example_input_array has rows of shape {tuple(example.shape[1:])} but "
            f"its datamodule's batches have rows of shape {tuple(data_batch.shape[1:])}: the export would "
            "take inputs the data does not have; make example_input_array one batch shaped like the data "
            "(or remove it: a batch of the datamodule then stands in)"
        )
    return ExportSpec(
        inputs=(_two_rows(example),), input_names=["input"], dynamic_axes={"input": {0: "batch"}}
    )


def _forward_parameters(module: torch.nn.Module) -> list[str]:
    return [
        p.name
        for p in inspect.signature(module.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def _in_forward_order(module: torch.nn.Module, example: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """``example_input_array = {"input_ids": ..., "attention_mask": ...}`` (Lightning passes a dict as
    keyword arguments): its tensors as forward's first positional arguments, in forward's order."""
    parameters = _forward_parameters(module)
    ordered = [name for name in parameters if name in example]
    if set(ordered) != set(example) or ordered != parameters[: len(ordered)]:
        raise UsageError(
            f"{type(module).__name__}.example_input_array's keys ({', '.join(example)}) must be forward's first "
            f"parameters ({', '.join(parameters[: len(example)])}) to be exported as its inputs; or define "
            "litforge_export_spec()"
        )
    return tuple(example[name] for name in ordered)


def _two_rows(example: torch.Tensor) -> torch.Tensor:
    """An example batch of one sample, repeated to two: ``torch.export`` specialises a batch axis of size 1
    (``torch.zeros(1, 64)``, as many modules write it) to that size, and refuses to make it dynamic."""
    return example.repeat(2, *[1] * (example.dim() - 1)) if example.dim() and len(example) == 1 else example


def _positional_inputs(module: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> ExportSpec:
    """``example_input_array = (cat, num)``, Lightning's form for a ``forward(cat, num)``: one input per
    tensor, named after ``forward``'s parameters, each with a dynamic batch axis 0."""
    owner = type(module).__name__
    _refuse_packed(module, example, f"{owner}.example_input_array holds")
    if any(t.dim() == 0 for t in example):
        shapes = ", ".join(str(tuple(t.shape)) for t in example)
        raise UsageError(
            f"{owner}.example_input_array: its tensors ({shapes}) must share the batch axis 0 to be exported as "
            "forward's inputs (or define `litforge_export_spec()`)"
        )
    parameters = _forward_parameters(module)
    names = parameters[: len(example)] if len(parameters) >= len(example) else []
    names = names or [f"input_{i}" for i in range(len(example))]
    return ExportSpec(
        inputs=tuple(map(_two_rows, example)),
        input_names=names,
        dynamic_axes={name: {0: "batch"} for name in names},
    )


def _refuse_packed(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], whose: str) -> None:
    """Refuse forward inputs that share no axis 0 (a graph batch's nodes, edges and node-to-graph index):
    an export serves one output row per request row."""
    if packed := packed_inputs(module, inputs, {}):
        raise UsageError(
            f"{type(module).__name__} cannot be exported: {whose} forward's {packed}, which share no batch "
            f"axis 0; {PACKED_EXPORT}"
        )


def is_stale_example(module: torch.nn.Module, example: torch.Tensor, data_input: torch.Tensor) -> bool:
    """Whether ``example_input_array`` has other rows than the data although ``forward`` takes the data's
    rows (a CNN with adaptive pooling runs on both sizes). A ``forward`` that fails on the data's rows takes
    something else (a GAN's noise): its example is right."""
    return bool(stale_inputs(module, (example,), (data_input,), ["input"]))


def stale_inputs(
    module: torch.nn.Module,
    examples: tuple[torch.Tensor, ...],
    data: tuple[torch.Tensor, ...],
    names: list[str],
) -> list[str]:
    """``x has rows of shape (16, 3) in example_input_array but (40, 3) in the data``, for each of forward's
    example inputs whose rows differ from the data's while ``forward`` runs on the data's (a GRU over padded
    series of any length); ``[]`` when the examples hold or ``forward`` fails on the data's inputs."""
    if len(examples) != len(data) or all(
        e.shape[1:] == d.shape[1:] for e, d in zip(examples, data, strict=True)
    ):
        return []
    rows = tuple(
        d[:2].to(e.dtype) if d.is_floating_point() else d[:2] for e, d in zip(examples, data, strict=True)
    )
    try:
        with torch.no_grad():
            module(*rows)
    except Exception:
        return []
    return [
        f"{name} has rows of shape {tuple(e.shape[1:])} in example_input_array but {tuple(d.shape[1:])} in the data"
        for name, e, d in zip(names, examples, data, strict=True)
        if e.shape[1:] != d.shape[1:]
    ]


def refuse_stale_examples(
    module: torch.nn.Module, spec: ExportSpec, real_inputs: tuple[torch.Tensor, ...] | None
) -> None:
    """A tuple ``example_input_array`` whose rows differ from the run's batch while ``forward`` runs on the
    batch: the artifact would take only the example's sizes and refuse every real input (a one-tensor
    example is checked in ``export_spec``; ``litforge_export_spec()`` declares its own axes)."""
    if not real_inputs or len(spec.inputs) < 2 or callable(getattr(module, "litforge_export_spec", None)):
        return
    if stale := stale_inputs(module, spec.inputs, real_inputs, spec.input_names):
        name = spec.input_names[0]
        raise UsageError(
            f"{type(module).__name__}.example_input_array: {'; '.join(stale)}, and forward runs on the data's: "
            "the export would take only the example's sizes and refuse the data. Shape example_input_array "
            "like the data, or declare an axis whose length varies in litforge_export_spec() (dynamic_axes "
            f'{{"{name}": {{0: "batch", 1: "sequence"}}}}, docs/export.md)'
        )


def _from_hook(owner: str, raw: dict[str, Any]) -> ExportSpec:
    inputs = tuple(raw.get("inputs") or ())
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise UsageError(f"{owner}.litforge_export_spec(): 'inputs' must be a non-empty tuple of tensors")
    names = list(raw.get("input_names") or [f"input_{i}" for i in range(len(inputs))])
    if len(names) != len(inputs):
        raise UsageError(f"{owner}.litforge_export_spec(): {len(names)} input_names for {len(inputs)} inputs")
    request_format = raw.get("request_format", "features")
    if request_format not in REQUEST_FORMATS:
        raise UsageError(
            f"{owner}.litforge_export_spec(): request_format must be one of {REQUEST_FORMATS}, "
            f"got {request_format!r}"
        )
    if request_format == "texts" and raw.get("save_assets") is None:
        raise UsageError(
            f"{owner}.litforge_export_spec(): request_format 'texts' needs 'save_assets' to write the "
            "tokenizer that serve and predict read, e.g. lambda out: tokenizer.save_pretrained(out / "
            "'tokenizer') (docs/export.md)"
        )
    max_length = raw.get("max_length")
    if max_length is not None and (
        not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1
    ):
        raise UsageError(
            f"{owner}.litforge_export_spec(): max_length must be a positive int, got {max_length!r}"
        )
    axes = {
        str(k): {int(a): str(n) for a, n in v.items()} for k, v in (raw.get("dynamic_axes") or {}).items()
    }
    unknown = set(axes) - set(names)
    if unknown:
        raise UsageError(
            f"{owner}.litforge_export_spec(): dynamic_axes names unknown inputs {sorted(unknown)}"
        )
    # the inputs whose axis 0 is the batch must share it; with none declared so, every input's axis 0 is
    # (an input of its own axis 0, prototypes: {0: "classes"} beside x: {0: "batch"}, is not per sample)
    batched = [(n, t) for n, t in zip(names, inputs, strict=True) if axes.get(n, {}).get(0) == "batch"]
    batched = batched or list(zip(names, inputs, strict=True))
    if len(batched) > 1 and shared_first_axis([t for _, t in batched]) is None:
        shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in batched)
        raise UsageError(
            f"{owner} cannot be exported: litforge_export_spec()'s inputs {shapes} share no batch axis 0; "
            f"{PACKED_EXPORT}"
        )
    return ExportSpec(
        inputs=inputs,
        input_names=names,
        output_names=list(raw["output_names"]) if raw.get("output_names") else None,
        dynamic_axes=axes,
        request_format=request_format,
        save_assets=raw.get("save_assets"),
        feature_names=[str(name) for name in raw["feature_names"]] if raw.get("feature_names") else None,
        max_length=max_length,
    )
