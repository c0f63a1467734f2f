"""TorchScript, the LEGACY format (``litforge export --ckpt FILE --format torchscript``).

``torch.jit`` is deprecated upstream in favour of ``torch.export``; use it only for runtimes that still
need a ``.pt`` ScriptModule (older LibTorch C++ apps). Made with ``torch.jit.trace`` on the example
inputs, so data-dependent control flow is frozen to the traced path — parity verification catches that.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch

from litforge.atomic_files import atomic_path
from litforge.export.pt2 import _torch_runner
from litforge.export.spec import ExportSpec

FILENAME = "model.torchscript.pt"
RUNTIME = "torch.jit"


def export(module: torch.nn.Module, spec: ExportSpec, path: Path) -> dict[str, Any]:
    """Trace the module, write ``path`` atomically and return how it was made."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit's own deprecation notice; the docs say it louder
        if isinstance(module, L.LightningModule):  # Lightning's helper guards its trainer-only properties
            traced = module.to_torchscript(method="trace", example_inputs=spec.inputs, check_trace=False)
        else:
            traced = torch.jit.trace(module, spec.inputs, check_trace=False)
        with atomic_path(path) as tmp:
            torch.jit.save(traced, str(tmp))
    return {"exporter": "torch.jit.trace", "deprecated": True}


def load(path: Path, input_names: list[str], threads: int | None = None):
    """``torch.jit.load(path)`` as a callable: numpy inputs -> first output (numpy)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(path), map_location="cpu")
    return _torch_runner(scripted.eval())
