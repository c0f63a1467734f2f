"""The memory/speed switches the reference models share: ``torch.compile`` and activation checkpointing.

litforge fit --config configs/transformer.yaml --model.compile true
litforge fit --config configs/transformer.yaml --model.activation_checkpointing true
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from litforge._compat.torch_compile import is_compiled_in_place


def compile_in_place(modules: Iterable[nn.Module]) -> None:
    """Compile each module in place (``nn.Module.compile``), keeping its ``state_dict`` keys unchanged.

    ``dynamic=False`` specialises on the batch shape: a short last batch costs one extra static graph
    (or none with ``drop_last=True``) instead of a switch to slower dynamic-shape kernels. See
    ``docs/memory-and-speed.md`` for the measurements.
    """
    for module in modules:
        if not is_compiled_in_place(module):  # configure_model may run more than once
            module.compile(dynamic=False)


def run_blocks(blocks: Iterable[nn.Module], x: torch.Tensor, activation_checkpointing: bool) -> torch.Tensor:
    """Apply ``blocks`` in order; with ``activation_checkpointing`` each block's activations are
    recomputed in backward instead of stored (``use_reentrant=False``; dropout RNG is replayed)."""
    for block in blocks:
        if activation_checkpointing and torch.is_grad_enabled():
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x
