"""torch's semi-private helpers litforge uses: pytree traversal and the ONNX exporter's logger name."""

from __future__ import annotations

import logging

from torch.utils._pytree import tree_leaves, tree_map

__all__ = ["quiet_onnx_op_registration", "tree_leaves", "tree_map"]

_ONNX_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


def quiet_onnx_op_registration() -> None:
    """Silence the ONNX exporter's warning per optional (torchvision) op it cannot register."""
    logging.getLogger(_ONNX_REGISTRATION_LOGGER).setLevel(logging.ERROR)
