"""Parity: every reloaded artifact against the eager model (run by ``litforge export``).

Cases: one real batch from the run's datamodule (when available), then random inputs at batch sizes 1, 7
and 64 (and shorter sequences when a sequence axis is dynamic). A case passes when every element obeys
``|artifact - eager| <= atol + rtol * |eager|`` with the tolerance of the output dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from litforge.errors import first_line
from litforge.export.formats import Runner
from litforge.export.outputs import forward_outputs
from litforge.export.spec import ExportSpec

BATCH_SIZES = (1, 7, 64)
# (atol, rtol) per output dtype; fp32 follows the issue's ~1e-5.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-10, 1e-10),
    "float32": (1e-5, 1e-5),
    "float16": (1e-3, 1e-3),
    "bfloat16": (1e-2, 1e-2),
}


@dataclass
class Case:
    """One parity input: a name and the tensors passed to ``forward``."""

    name: str
    inputs: tuple[torch.Tensor, ...]
    # made up by truncating sequences: inputs the eager model may refuse (a lengths input longer than them)
    optional: bool = False


def parity_cases(spec: ExportSpec, real: tuple[torch.Tensor, ...] | None, seed: int = 0) -> list[Case]:
    """The real batch (``real``: every input of forward from one batch of the run's data, when they have the
    example inputs' shapes but for the dynamic axes) and random batches of 1, 7 and 64 rows."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    if real and _fits(spec, real):
        rows = len(real[0])
        cases.append(
            Case(
                f"real batch ({rows} rows)",
                tuple(t.to(e.dtype) for t, e in zip(real, spec.inputs, strict=True)),
            )
        )
    reference = real[0] if real and cases and len(real) == 1 else None  # the value range of random floats
    for batch in BATCH_SIZES:
        cases.append(Case(f"random batch {batch}", _random_like(spec, batch, None, reference, generator)))
    sequences = [
        t
        for name, t in zip(spec.input_names, spec.inputs, strict=True)
        if 1 in spec.dynamic_axes.get(name, {})
    ]
    if sequences and (longest := min(t.shape[1] for t in sequences)) > 1:
        shorter = longest // 2
        inputs = _random_like(spec, 7, shorter, reference, generator)
        cases.append(Case(f"random batch 7, sequence {shorter}", inputs, optional=True))
    return cases


def _fits(spec: ExportSpec, real: tuple[torch.Tensor, ...]) -> bool:
    """Whether real inputs have the spec's inputs' shapes, but for the batch and the dynamic axes (a sequence of
    its own length is fine)."""
    if len(real) != len(spec.inputs):
        return False
    for name, tensor, example in zip(spec.input_names, real, spec.inputs, strict=True):
        dynamic = {0, *spec.dynamic_axes.get(name, {})}
        fixed = [
            [size for axis, size in enumerate(t.shape) if axis not in dynamic] for t in (tensor, example)
        ]
        if tensor.ndim != example.ndim or fixed[0] != fixed[1]:
            return False
    return True


def random_inputs(
    spec: ExportSpec, batch: int, reference: torch.Tensor | None = None, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """``batch`` random rows shaped like the spec's example inputs (see ``_random_like``)."""
    return _random_like(spec, batch, None, reference, torch.Generator().manual_seed(seed))


def _random_like(
    spec: ExportSpec,
    batch: int,
    sequence: int | None,
    reference: torch.Tensor | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, ...]:
    """Float inputs: uniform over the observed value range; integer inputs: resampled example rows."""
    rows = torch.randint(0, spec.inputs[0].shape[0], (batch,), generator=generator)
    out = []
    for name, example in zip(spec.input_names, spec.inputs, strict=True):
        if example.is_floating_point():
            source = reference if reference is not None else example
            low, high = float(source.min()), float(source.max())
            shape = (batch, *example.shape[1:])
            if high > low:
                tensor = torch.rand(shape, generator=generator) * (high - low) + low
            else:
                tensor = torch.randn(shape, generator=generator)
            tensor = tensor.to(example.dtype)
        else:
            tensor = example[rows]
        if sequence is not None and 1 in spec.dynamic_axes.get(name, {}):
            tensor = tensor[:, :sequence]
        elif sequence is not None and _lengths_like(example, spec):
            tensor = tensor.clamp(max=sequence)  # a lengths input beside the tokens: within the shorter rows
        out.append(tensor.contiguous())
    return tuple(out)


def _lengths_like(example: torch.Tensor, spec: ExportSpec) -> bool:
    """An integer input of one value per row, none beyond the example's sequence length: the lengths of a
    ``forward(tokens, lengths)``, which a shorter-sequence case must shorten too."""
    sequences = [
        t.shape[1]
        for n, t in zip(spec.input_names, spec.inputs, strict=True)
        if 1 in spec.dynamic_axes.get(n, {})
    ]
    integer = not (example.is_floating_point() or example.is_complex() or example.dtype == torch.bool)
    return integer and example.ndim == 1 and bool(sequences) and 0 < int(example.max()) <= min(sequences)


def eager_outputs(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    """The eager model's outputs as numpy, one array per output the export carries
    (``litforge.export.outputs``)."""
    with torch.inference_mode():
        return forward_outputs(module, module(*inputs), len(inputs[0])).numpy()


FIGURES = ("max_abs_error", "max_rel_error", "tolerance_used")  # per case and, the worst, per format


def compare_outputs(
    expected: list[np.ndarray], actual: list[np.ndarray], names: list[str], tolerance: float | None = None
) -> dict[str, Any]:
    """``compare`` for each output the export carries: the worst errors, and the first output that fails."""
    if len(actual) < len(expected):
        return {"passed": False, "error": f"{len(actual)} outputs, eager {len(expected)}"}
    figures = [compare(e, a, tolerance) for e, a in zip(expected, actual, strict=False)]
    if len(figures) == 1:
        return figures[0]
    summary: dict[str, Any] = {key: _worst(figures, key) for key in FIGURES}
    summary["passed"] = all(f["passed"] for f in figures)
    failed = next((name for name, f in zip(names, figures, strict=True) if not f["passed"]), None)
    if failed is not None:
        figure = figures[names.index(failed)]
        summary["error"] = f"output {failed!r}: {figure.get('error') or 'beyond the tolerance'}"
    return summary


def compare(
    expected: np.ndarray, actual: np.ndarray, tolerance: float | None = None
) -> dict[str, float | bool | str]:
    """Max absolute / relative error and whether it is within the dtype's tolerance (``tolerance``: the
    user's own bound, as both the absolute and the relative one: ``litforge export --tolerance``)."""
    atol, rtol = TOLERANCES.get(str(expected.dtype), TOLERANCES["float32"])
    if tolerance is not None:
        atol = rtol = tolerance
    if expected.shape != actual.shape:
        return {"passed": False, "error": f"shape {actual.shape} != eager {expected.shape}"}
    expected64, actual64 = expected.astype(np.float64), actual.astype(np.float64)
    diff = np.abs(actual64 - expected64)
    relative = diff / np.maximum(np.abs(expected64), np.finfo(np.float32).tiny)
    allowed = atol + rtol * np.abs(expected64)
    passed = bool(np.all(diff <= allowed))
    return {
        "max_abs_error": _finite(diff.max(initial=0.0)),
        "max_rel_error": _finite(relative.max(initial=0.0)),
        # the pass rule's own figure: the largest error as a share of what its element is allowed (<= 1 passes);
        # the relative error alone reads as a failure for outputs near 0 (1.25 on a logit of 1e-6)
        "tolerance_used": _finite((diff / allowed).max(initial=0.0)),
        "atol": atol,
        "rtol": rtol,
        "passed": passed,
    }


def verify(
    module: torch.nn.Module,
    runner: Runner,
    cases: list[Case],
    names: list[str],
    tolerance: float | None = None,
) -> dict[str, object]:
    """Run every case through ``runner`` and the eager module; summary plus per-case figures (``names``: the
    outputs', to say which one differs; ``tolerance``: ``compare``'s)."""
    results = []
    for case in cases:
        try:
            expected = eager_outputs(module, case.inputs)
        except Exception as err:
            if not case.optional:
                raise
            results.append(
                {"case": case.name, "passed": True, "skipped": f"eager refused it: {first_line(err)}"}
            )
            continue
        try:
            actual = runner(*(t.numpy() for t in case.inputs))
            figures = compare_outputs(expected, [np.asarray(a) for a in actual], names, tolerance)
        except Exception as err:  # a runtime that rejects a batch size is a parity failure, not a crash
            figures = {"passed": False, "error": f"{type(err).__name__}: {first_line(err)}"}
        results.append({"case": case.name, **figures})
    return {
        "passed": all(r["passed"] for r in results),
        **{key: _worst(results, key) for key in FIGURES},
        "cases": results,
    }


def _finite(value: float) -> float | None:
    """JSON has no NaN/inf: a non-finite error (the artifact returned NaN) is recorded as ``None``."""
    return float(value) if np.isfinite(value) else None


def _worst(results: list[dict], key: str) -> float | None:
    values = [r.get(key) for r in results if "skipped" not in r]
    return None if any(v is None for v in values) else max(values, default=0.0)
