"""The export-parity check: the module exported to ONNX (``torch.onnx.export(dynamo=True)``) and run by
onnxruntime gives the eager outputs on a real batch. Needs ``pip install 'litforge[export]'``.

A module that applies ``torch.compile`` to itself is checked as the eager code it compiles, as
``litforge export`` exports it."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from litforge._compat.torch_compile import uncompiled
from litforge.export.parity import compare
from litforge.predictions.batch_tensors import PACKED_EXPORT, packed_inputs
from litforge.testing.harness import quiet
from litforge.testing.subject import (
    DataLike,
    ModelLike,
    SkipCheck,
    Subject,
    as_subject,
    first_line,
    model_input,
    output_tensors,
    prepare_batch,
)


def _check_litforge_exports(module: torch.nn.Module, batch: Any) -> None:
    """What ``litforge export`` would refuse before tracing (no single example input, a dict output, a stale
    ``example_input_array``) fails this check too: a PASS here means the command works."""
    from litforge.errors import UsageError
    from litforge.export.parity import eager_outputs
    from litforge.export.spec import export_spec, refuse_stale_examples
    from litforge.predictions.forward_inputs import forward_input_values, single_tensor

    tensors = forward_input_values(module, batch)  # as the export reads a run's batch (export.loading)
    several = (
        tuple(tensors) if len(tensors) > 1 and all(isinstance(t, torch.Tensor) for t in tensors) else None
    )
    try:
        spec = export_spec(module, single_tensor(tensors), several)
        refuse_stale_examples(module, spec, several)
        eager_outputs(module, spec.inputs)
    except UsageError as error:
        raise AssertionError(f"litforge export refuses it: {error}") from None


def check_export(model: ModelLike | Subject, data: DataLike = None) -> str:
    """``forward`` exported to ONNX on the first batch matches eager outputs on that batch and on the
    second one (unseen: catches values the export baked in as constants), within the tolerance of the
    output dtype that ``litforge export`` applies (``litforge.export.parity.compare``)."""
    missing = [
        name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise SkipCheck(f"{', '.join(missing)} not installed: pip install 'litforge[export]'")
    subject = as_subject(model, data)
    module = uncompiled(subject.new_model(configure=True)).eval()  # layers from configure_model; eager code
    batch = prepare_batch(module, subject.batch)
    args, kwargs = model_input(module, batch)
    if packed := packed_inputs(module, args, kwargs):
        raise SkipCheck(
            f"forward takes packed inputs ({packed}), which litforge export refuses: {PACKED_EXPORT}"
        )
    _check_litforge_exports(module, batch)
    try:
        with quiet():
            program = torch.onnx.export(module, args, kwargs=kwargs or None, dynamo=True, verbose=False)
    except Exception as error:
        raise AssertionError(
            f"torch.onnx.export failed: {type(error).__name__}: {first_line(error)}"
        ) from error
    checked = [("the export batch", args, kwargs)]
    if subject.second_batch is not None:
        other_args, other_kwargs = model_input(module, prepare_batch(module, subject.second_batch))
        if [t.shape for t in output_tensors((other_args, other_kwargs))] == [
            t.shape for t in output_tensors((args, kwargs))
        ]:
            checked.append(("the next batch", other_args, other_kwargs))
    worst = 0.0
    for where, batch_args, batch_kwargs in checked:
        with torch.no_grad():
            expected = output_tensors(module(*batch_args, **batch_kwargs))
        got = output_tensors(program(*batch_args, **batch_kwargs))
        if len(got) != len(expected):
            raise AssertionError(f"the ONNX model returns {len(got)} outputs, eager forward {len(expected)}")
        for i, (a, b) in enumerate(zip(expected, got, strict=False)):
            figures = compare(a.detach().cpu().numpy(), b.to(a.device, a.dtype).detach().cpu().numpy())
            if not figures["passed"]:
                detail = figures.get("error") or f"max abs diff {figures['max_abs_error']:.3g}"
                raise AssertionError(f"ONNX output {i} differs from eager on {where}: {detail}")
            worst = max(worst, figures["max_abs_error"] or 0.0)
    return f"ONNX (onnxruntime) matches eager on {len(checked)} batch(es), max abs diff {worst:.2g}"
