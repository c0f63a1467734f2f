"""``litforge export``'s job: export a module to each format, verify each artifact, write export.json.

litforge export --ckpt runs/classifier/version_0/checkpoints/best.ckpt --out exports/digits
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from litforge._compat.torch import tree_leaves
from litforge._compat.torch_compile import uncompiled
from litforge.errors import UsageError, first_line
from litforge.export import metadata
from litforge.export.feature_names import check_width, declared_feature_names
from litforge.export.formats import format_module, load_runner
from litforge.export.input_values import embedding_ranges
from litforge.export.outputs import ForwardOutputs, forward_outputs
from litforge.export.parity import eager_outputs, parity_cases, random_inputs, verify
from litforge.export.spec import ExportSpec, export_spec, refuse_stale_examples
from litforge.export.timing import measure
from litforge.predictions import output_head


@dataclass
class ExportResult:
    """The written ``export.json`` content and the formats whose parity failed."""

    metadata: dict[str, Any]
    failed: list[str]


def export_module(
    module: torch.nn.Module,
    out: Path,
    formats: list[str],
    *,
    classes: output_head.Classes | None = None,
    real_batch: torch.Tensor | None = None,
    real_inputs: tuple[torch.Tensor, ...] | None = None,
    source: dict[str, Any] | None = None,
    benchmark: bool = False,
    predict_step_sigmoid: bool = False,
    feature_names: list[str] | None = None,
    text_max_length: int | None = None,
    tolerance: float | None = None,
) -> ExportResult:
    """Export ``module`` (in eval mode) to ``formats`` under ``out``, verify each, write export.json.

    ``classes``: what the module and its datamodule declare (default: the module alone); with the output
    shape it decides the output head when the module declares none (``litforge.predictions.output_head``);
    ``predict_step_sigmoid``: the module's ``predict_step`` returns sigmoid(forward) (a multi-label model);
    ``feature_names``: the input's columns as the run's datamodule names them (``export.feature_names``);
    ``text_max_length``: the datamodule's truncation of texts (a ``"texts"`` spec without ``max_length``);
    ``tolerance``: the parity bound instead of the output dtype's (``parity.compare``)."""
    module = uncompiled(module).eval().cpu()  # a module that compiled itself exports its eager code
    spec = export_spec(module, real_batch, real_inputs)
    refuse_stale_examples(module, spec, real_inputs)
    _refuse_a_fixed_batch(module, spec)
    _note_a_fixed_sequence_length(module, spec, real_inputs)
    with torch.inference_mode(), _parameters_used(module) as used:
        outputs = forward_outputs(module, module(*spec.inputs), len(spec.inputs[0]))
    _note_weights_forward_never_uses(module, used, formats)
    examples = outputs.numpy()
    classes = output_head.Classes() if outputs.several else classes or output_head.declared_classes(module)
    input_rows = tuple(spec.inputs[0].shape[1:]) if len(spec.inputs) == 1 else None
    head, why = _output_head(module, examples, outputs.several, classes, predict_step_sigmoid, input_rows)
    threshold, threshold_source = output_head.label_threshold(module)
    if head == "multi_label" and threshold_source is not None:
        why += f"; labels on above {threshold:g}, as {threshold_source} says"
    spec = replace(spec, output_names=_output_names(module, spec, outputs, head))
    out.mkdir(parents=True, exist_ok=True)
    real = real_inputs or ((real_batch,) if real_batch is not None else None)
    cases = parity_cases(spec, real)
    if real and not cases[0].name.startswith("real batch"):
        shapes = ", ".join(str(tuple(t.shape)) for t in real)
        print(
            f"litforge: note: the run's batch ({shapes}) does not match forward's example inputs "
            f"({', '.join(str(tuple(t.shape)) for t in spec.inputs)}) but for the batch and dynamic axes; "
            "parity is checked on random inputs only",
            file=sys.stderr,
        )
    entries: dict[str, dict[str, Any]] = {}
    runners = {}
    for name in formats:
        fmt = format_module(name)
        path = out / fmt.FILENAME
        try:
            info = fmt.export(module, spec, path)
            runners[name] = load_runner(name, path, spec.input_names)
        except UsageError:
            raise
        except Exception as err:  # an unexportable graph is this format's failure, reported with the others
            message = f"export failed: {type(err).__name__}: {first_line(err)}"
            entries[name] = {
                "file": None,
                "runtime": fmt.RUNTIME,
                "error": message,
                "parity": _not_run(message),
            }
            continue
        entries[name] = {
            "file": path.name,
            "sha256": metadata.sha256(path),
            "bytes": path.stat().st_size,
            "runtime": fmt.RUNTIME,
            **info,
            "parity": verify(module, runners[name], cases, spec.output_names, tolerance),
        }
    assets = _save_assets(spec, out)
    record = {
        "schema_version": metadata.SCHEMA_VERSION,
        "created": metadata.timestamp(),
        "source": {"model_class": f"{type(module).__module__}.{type(module).__qualname__}", **(source or {})},
        "formats": entries,
        "request_format": spec.request_format,
        "inputs": spec.describe_inputs(
            embedding_ranges(module, spec.input_names, spec.inputs),
            _feature_names(module, spec, feature_names),
        ),
        "outputs": _describe_outputs(examples, spec),
        **_text_truncation(spec, text_max_length),
        "output_head": head,
        **({"threshold": threshold} if head == "multi_label" else {}),
        "class_labels": _class_labels(head, examples[0], classes),
        "preprocessing": metadata.preprocessing(module),
        "postprocessing": {**_postprocessing(head, threshold), "output_head": why},
        "assets": assets,
        "versions": metadata.versions(),
    }
    if benchmark:
        record["benchmark"] = _benchmark(module, spec, runners, real_batch)
    metadata.write(out, record)
    failed = [name for name, entry in entries.items() if not entry["parity"]["passed"]]
    return ExportResult(record, failed)


def _text_truncation(spec: ExportSpec, datamodule_max_length: int | None) -> dict[str, int | None]:
    """``{"text_max_length": N}`` for a texts export: the tokens serve and predict keep of a text, as training
    kept them (the spec's ``max_length``, else the datamodule's); ``None``: the tokenizer's own limit."""
    if spec.request_format != "texts":
        return {}
    limit = spec.max_length or datamodule_max_length
    if limit is None:
        print(
            "litforge: note: texts are truncated at the exported tokenizer's own limit: give "
            "litforge_export_spec() a max_length (or the datamodule a max_length) to truncate them as training did",
            file=sys.stderr,
        )
    return {"text_max_length": limit}


def _postprocessing(head: str, threshold: float) -> dict[str, str]:
    """export.json's words for what the head does with the model's output (a multi-label one's threshold)."""
    steps = dict(output_head.POSTPROCESSING[head])
    if head == "multi_label":
        steps["prediction"] = steps["prediction"].replace("> 0.5", f"> {threshold:g}")
    return steps


def _not_run(message: str) -> dict[str, Any]:
    return {
        "passed": False,
        "max_abs_error": None,
        "max_rel_error": None,
        "tolerance_used": None,
        "cases": [{"case": "export", "passed": False, "error": message}],
    }


def _class_labels(head: str, output: np.ndarray, classes: output_head.Classes) -> list[str] | None:
    """The class names of a classifier whose output they fit (C names for C scores, 2 for one logit), or
    the label names of a multi-label model (one per output)."""
    width = int(np.prod(output.shape[1:]))
    fits = {"classification": max(width, 2), "multi_label": width}.get(head)
    if not classes.names or len(classes.names) != fits:
        return None
    return classes.names


def _feature_names(module: torch.nn.Module, spec: ExportSpec, found: list[str] | None) -> list[str] | None:
    """The inputs' column names, one after the other: declared by the export spec (one per value, else
    refused), else ``found`` (the datamodule's) or the module's own, when there is one per value of a row.
    A forward of several inputs takes names from the module only: the datamodule's list knows no order of
    forward's inputs, and names split by count alone could land on the wrong one (a note says so)."""
    widths = spec.row_widths()
    if widths is None:
        return None
    width = sum(widths)
    declared = check_width(spec.feature_names, width, type(module).__name__)
    if declared:
        return declared
    own = check_width(declared_feature_names(module), width, "")
    if len(widths) == 1:
        return check_width(found, width, "") or own
    if check_width(found, width, "") and not own:
        print(
            f"litforge: note: the datamodule's {width} feature names are not split over forward's "
            f"{len(widths)} inputs ({', '.join(spec.input_names)}): it cannot say which go to which; set "
            "feature_names on the module, in forward's order, for CSV headers and records by name",
            file=sys.stderr,
        )
    return own


class _ParametersUsed(torch.overrides.TorchFunctionMode):
    """Records the ids of the tensors in ``watched`` that a torch function receives while the mode is on."""

    def __init__(self, watched: set[int]) -> None:
        super().__init__()
        self.watched, self.used = watched, set()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        for value in tree_leaves((args, kwargs)):
            if isinstance(value, torch.Tensor) and id(value) in self.watched:
                self.used.add(id(value))
        return func(*args, **kwargs)


@contextlib.contextmanager
def _parameters_used(module: torch.nn.Module) -> Iterator[set[int]]:
    """The ids of ``module``'s parameters that the code inside the block computes with (a weight tied
    between two submodules is one id)."""
    mode = _ParametersUsed({id(p) for p in module.parameters()})
    with mode:
        yield mode.used


def _note_weights_forward_never_uses(module: torch.nn.Module, used: set[int], formats: list[str]) -> None:
    """A submodule none of whose weights forward uses (a distillation teacher registered as ``self.teacher``,
    a projection head for training): ONNX leaves them out, pt2 and TorchScript carry them: say so, with
    the size. A fact, not a fault: such a module is often needed in training."""
    carried = [f for f in formats if f in ("pt2", "torchscript")]
    idle = []
    for name, child in module.named_children():
        weights = {id(p): p.numel() for p in child.parameters()}
        if weights and not weights.keys() & used:
            idle.append(f"{name} ({sum(weights.values()):,} parameters)")
    if carried and idle:
        print(
            f"litforge: note: forward does not use {', '.join(idle)}: the {' and '.join(carried)} artifacts carry "
            "those weights anyway, ONNX leaves them out (--format onnx ships only what forward computes with)",
            file=sys.stderr,
        )


def _refuse_a_fixed_batch(module: torch.nn.Module, spec: ExportSpec) -> None:
    """A ``litforge_export_spec()`` whose ``dynamic_axes`` give no input a batch axis 0: the artifact would
    take batches of exactly its example's size, while parity, serve and predict batch rows freely (it failed
    at parity with onnxruntime's "Got invalid dimensions")."""
    if any(0 in spec.dynamic_axes.get(name, {}) for name in spec.input_names):
        return
    name, rows = spec.input_names[0], len(spec.inputs[0])
    raise UsageError(
        f"{type(module).__name__}.litforge_export_spec(): no input has a dynamic batch axis, so the artifact "
        f"would take batches of exactly {rows} rows; add 'dynamic_axes': {{'{name}': {{0: 'batch'}}, ...}} "
        "(token ids: {0: 'batch', 1: 'sequence'})"
    )


def _output_head(
    module: torch.nn.Module,
    examples: list[np.ndarray],
    several: bool,
    classes: output_head.Classes,
    predict_step_sigmoid: bool,
    input_rows: tuple[int, ...] | None,
) -> tuple[str, str]:
    """(head, why): ``named_outputs`` for several outputs, else the one output's head (declared or inferred);
    ``input_rows``: forward's one input's shape per sample."""
    if several:
        return output_head.NAMED_OUTPUTS, f"{type(module).__name__}.forward returns {len(examples)} outputs"
    floating = np.issubdtype(examples[0].dtype, np.floating)
    return output_head.resolve_head(
        module,
        examples[0].shape[1:],
        floating,
        classes,
        predict_step_sigmoid=predict_step_sigmoid,
        outputs=examples[0],
        input_rows=input_rows,
    )


def _output_names(module: torch.nn.Module, spec: ExportSpec, outputs: ForwardOutputs, head: str) -> list[str]:
    """The names of the outputs (``litforge.export.outputs``): declared ones must be one per output."""
    single = "logits" if head in ("classification", "multi_label") else "output"
    names = outputs.names(spec.output_names, single)
    if len(names) != len(outputs.tensors):
        raise UsageError(
            f"{type(module).__name__}.litforge_export_spec(): {len(names)} output_names for the {len(outputs.tensors)} outputs "
            "of forward; name each output once"
        )
    return names


def _describe_outputs(outputs: list[np.ndarray], spec: ExportSpec) -> list[dict[str, Any]]:
    batch_named = any(0 in spec.dynamic_axes.get(n, {}) for n in spec.input_names)
    batch_axis = next((axes[0] for axes in spec.dynamic_axes.values() if 0 in axes), "batch")
    described = []
    for name, output in zip(spec.output_names, outputs, strict=True):
        shape: list[Any] = list(output.shape)
        if batch_named and shape:
            shape[0] = batch_axis
        described.append({"name": name, "dtype": str(output.dtype), "shape": shape})
    return described


def _save_assets(spec: ExportSpec, out: Path) -> list[dict[str, str]]:
    """Run the spec's ``save_assets(out)`` and list the files it wrote (relative path and sha256)."""
    if spec.save_assets is None:
        return []
    before = {p for p in out.rglob("*") if p.is_file()}
    spec.save_assets(out)
    written = sorted(p for p in out.rglob("*") if p.is_file() and p not in before)
    return [{"file": str(p.relative_to(out)), "sha256": metadata.sha256(p)} for p in written]


def _benchmark(
    module: torch.nn.Module, spec: ExportSpec, runners: dict[str, Any], reference: torch.Tensor | None
) -> dict[str, Any]:
    """Eager vs each format: batch-1 median latency and batch-256 throughput."""
    one = [t.numpy() for t in random_inputs(spec, 1, reference)]
    big = [t.numpy() for t in random_inputs(spec, 256, reference)]

    def eager(*arrays: np.ndarray) -> list[np.ndarray]:
        return eager_outputs(module, tuple(torch.from_numpy(a) for a in arrays))

    figures = {"eager": measure(eager, one, big)}
    for name, runner in runners.items():
        figures[name] = measure(runner, one, big)
    base = figures["eager"]["latency_ms_batch1"]
    for entry in figures.values():
        entry["speedup_batch1_vs_eager"] = base / entry["latency_ms_batch1"]
    return {"torch_threads": torch.get_num_threads(), "results": figures}


def _note_a_fixed_sequence_length(
    module: torch.nn.Module, spec: ExportSpec, real_inputs: tuple[torch.Tensor, ...] | None = None
) -> None:
    """Rows of ids from ``example_input_array`` (no ``litforge_export_spec``) are exported at that one length:
    say so, since every other length is then refused by the artifact. So are padded rows of values beside
    a ``lengths`` input of the run's batch (a waveform's samples, a series' steps): its longest length is
    their axis 1, so they vary from batch to batch."""
    if callable(getattr(module, "litforge_export_spec", None)):
        return
    padded = _padded_axis_lengths(real_inputs)
    fixed = [
        (name, example)
        for name, example in zip(spec.input_names, spec.inputs, strict=True)
        if example.ndim >= 2
        and (
            (example.is_floating_point() and example.shape[1] in padded)
            or (
                not example.is_floating_point()
                and not example.is_complex()
                and example.dtype != torch.bool  # a padding mask, not ids
                and not (example.dtype == torch.uint8 and example.ndim >= 3)  # raw image pixels, not ids
            )
        )
    ]  # a tuple example (input_ids, attention_mask) too: each input of ids is fixed at its length
    if fixed:
        shapes = ", ".join(
            f"{name} {tuple(example.shape[1:])}" if len(spec.inputs) > 1 else str(tuple(example.shape[1:]))
            for name, example in fixed
        )
        kind = "integer rows" if all(not e.is_floating_point() for _, e in fixed) else "rows"
        print(
            f"litforge: note: {type(module).__name__} is exported for {kind} of shape {shapes} only (its "
            'example input\'s); for sequences of any length declare {1: "sequence"} in dynamic_axes of '
            "litforge_export_spec() (docs/export.md)",
            file=sys.stderr,
        )


def _padded_axis_lengths(inputs: tuple[torch.Tensor, ...] | None) -> set[int]:
    """The longest value of each integer input of one value per row (``lengths``) of the run's batch, when
    another input's axis 1 is that long: rows padded to the batch's longest."""
    if not inputs:
        return set()
    longest = {
        int(t.max())
        for t in inputs
        if t.ndim == 1 and t.numel() and not t.is_floating_point() and t.dtype != torch.bool
    }
    return {int(t.shape[1]) for t in inputs if t.ndim >= 2 and int(t.shape[1]) in longest}
