"""TorchScript, the LEGACY format (``litforge export --ckpt FILE --format torchscript``).

``torch.jit`` is deprecated upstream in favour of ``torch.export``; use it only for runtimes that still
need a ``.pt`` ScriptModule (older LibTorch C++ apps). Made with ``torch.jit.trace`` on the example
inputs, so data-dependent control flow is frozen to the traced path — parity verification catches that.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from litforge._compat.lightning import jit_tracing
from litforge.atomic_files import atomic_path
from litforge.export.pt2 import _torch_runner
from litforge.export.spec import ExportSpec

FILENAME = "model.torchscript.pt"
RUNTIME = "torch.jit"


def export(module: torch.nn.Module, spec: ExportSpec, path: Path) -> dict[str, Any]:
    """Trace the module, write ``path`` atomically and return how it was made."""
    with warnings.catch_warnings(), torch.no_grad(), jit_tracing():  # a LightningModule's trainer stays quiet
        warnings.simplefilter("ignore")  # torch.jit's own deprecation notice; the docs say it louder
        # strict=False: a forward may return a dict of heads (``litforge.export.outputs``)
        traced = torch.jit.trace(module.eval(), spec.inputs, check_trace=False, strict=False)
        with atomic_path(path) as tmp:
            torch.jit.save(traced, str(tmp))
    return {"exporter": "torch.jit.trace", "deprecated": True}


def load(path: Path, input_names: list[str], threads: int | None = None):
    """``torch.jit.load(path)`` as a callable: numpy inputs -> every output (numpy)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(path), map_location="cpu")
    return _torch_runner(scripted.eval())
