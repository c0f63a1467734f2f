"""``torch.export`` ExportedProgram saved as ``.pt2`` (``litforge export --ckpt FILE --format pt2``).

The recommended PyTorch-native format: a functional graph with named dynamic dimensions, loaded back with
``torch.export.load`` (no Python class needed) and the starting point for AOTInductor and ExecuTorch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from litforge._compat.torch import tree_leaves
from litforge.atomic_files import atomic_path
from litforge.export.pt2_archive_check import check_pt2_archive
from litforge.export.spec import ExportSpec

FILENAME = "model.pt2"
RUNTIME = "torch.export"


def export(module: torch.nn.Module, spec: ExportSpec, path: Path) -> dict[str, Any]:
    """Write ``path`` (atomically) and return how it was made."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(module, spec.inputs, dynamic_shapes=spec.dynamic_shapes(), strict=False)
    with atomic_path(path, keep_suffix=True) as tmp:
        torch.export.save(program, str(tmp))
    return {"exporter": "torch.export.export (non-strict)"}


def load(path: Path, input_names: list[str], threads: int | None = None):
    """``torch.export.load(path).module()`` as a callable: numpy inputs -> every output (numpy). An archive
    that loading would unpickle anything from is refused first (``pt2_archive_check``)."""
    check_pt2_archive(path)
    graph = torch.export.load(str(path)).module()
    return _torch_runner(graph)


def _torch_runner(graph: Any):
    def run(*arrays: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            output = graph(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
        return [t.numpy() for t in tree_leaves(output) if isinstance(t, torch.Tensor)]

    return run
