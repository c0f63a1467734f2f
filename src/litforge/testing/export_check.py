"""The export-parity check: the module exported to ONNX (``torch.onnx.export(dynamo=True)``) and run by
onnxruntime gives the eager outputs on a real batch. Needs ``pip install 'litforge[export]'``."""

from __future__ import annotations

import importlib.util

import torch

from litforge.testing.harness import quiet
from litforge.testing.subject import (
    DataLike,
    ModelLike,
    Subject,
    SkipCheck,
    as_subject,
    model_input,
    output_tensors,
    prepare_batch,
)


def check_export(model: ModelLike | Subject, data: DataLike = None, *, rtol: float = 1e-3, atol: float = 1e-5) -> str:
    """ONNX export of ``forward`` on a real batch matches eager outputs within ``rtol``/``atol``."""
    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise SkipCheck(f"{', '.join(missing)} not installed: pip install 'litforge[export]'")
    subject = as_subject(model, data)
    module = subject.new_model().eval()
    args, kwargs = model_input(module, prepare_batch(module, subject.batch))
    with torch.no_grad():
        expected = output_tensors(module(*args, **kwargs))
    try:
        with quiet():
            program = torch.onnx.export(module, args, kwargs=kwargs or None, dynamo=True, verbose=False)
    except Exception as error:
        raise AssertionError(f"torch.onnx.export failed: {type(error).__name__}: {str(error).splitlines()[0]}") from error
    got = output_tensors(program(*args, **kwargs))
    if len(got) != len(expected):
        raise AssertionError(f"ONNX model returns {len(got)} outputs, eager forward {len(expected)}")
    worst = 0.0
    for i, (a, b) in enumerate(zip(expected, got)):
        b = b.to(a.device)
        if a.shape != b.shape or not torch.allclose(a, b.to(a.dtype), rtol=rtol, atol=atol):
            diff = float((a - b).abs().max()) if a.shape == b.shape else float("nan")
            raise AssertionError(
                f"ONNX output {i} differs from eager (shape {tuple(b.shape)} vs {tuple(a.shape)}, max abs diff {diff:.3g})"
            )
        worst = max(worst, float((a - b).abs().max()) if a.numel() else 0.0)
    return f"ONNX (onnxruntime) matches eager, max abs diff {worst:.2g}"
