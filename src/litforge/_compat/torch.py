"""torch's semi-private helpers litforge uses: pytree traversal, the ONNX exporter's logger name and
Dynamo's compilation counters."""

from __future__ import annotations

import logging
import sys

from torch.utils._pytree import tree_leaves, tree_map

__all__ = [
    "compiled_graph_count",
    "quiet_onnx_op_registration",
    "recompilation_ids",
    "tree_leaves",
    "tree_map",
]

_ONNX_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


_ONNX_CONSTANT_FOLDING_LOGGER = "onnxscript.optimizer._constant_folding"


def quiet_onnx_op_registration() -> None:
    """Silence the ONNX exporter's warning per optional (torchvision) op it cannot register, and the
    optimizer's "Evaluation failed: ..." per constant it leaves unfolded (a Hugging Face encoder has
    some): neither is a problem with the export, which parity then checks."""
    logging.getLogger(_ONNX_REGISTRATION_LOGGER).setLevel(logging.ERROR)
    logging.getLogger(_ONNX_CONSTANT_FOLDING_LOGGER).setLevel(logging.ERROR)


def compiled_graph_count() -> int:
    """Graphs Dynamo has compiled in this process (each graph break and each recompilation adds one):
    ``torch._dynamo.utils.counters["stats"]["unique_graphs"]``. 0 when Dynamo was never imported."""
    if "torch._dynamo" not in sys.modules:  # nothing compiled; importing Dynamo costs a second
        return 0
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def recompilation_ids() -> set[str]:
    """Keys of the recent compilations (torch keeps the last 64) that recompiled code compiled before,
    because a guard failed (another shape, dtype, attribute...): ``torch._dynamo.utils.
    get_compilation_metrics()``, entries with a ``recompile_reason``. A key is the compile id and the
    start time: compile ids start over after ``torch.compiler.reset()``."""
    if "torch._dynamo" not in sys.modules:
        return set()
    from torch._dynamo.utils import get_compilation_metrics

    return {f"{m.compile_id}@{m.start_time}" for m in get_compilation_metrics() if m.recompile_reason}
