"""Undo ``torch.compile`` on a module, for exporting and checking it as plain eager code.

``litforge export`` and ``litforge check``'s export check trace the eager graph; a module compiled by its
own code (``self.net = torch.compile(self.net)`` in ``configure_model`` or ``__init__``, or
``self.net.compile()``) must be exported as the code it wraps. Private names used here:
``torch._dynamo.OptimizedModule`` and its ``_orig_mod`` (what ``torch.compile(module)`` returns and the
module it wraps; checkpoints saved through it name weights ``net._orig_mod.<...>``), and
``nn.Module._compiled_call_impl`` (set by ``nn.Module.compile()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn
from torch._dynamo import OptimizedModule

WRAPPED = "_orig_mod"  # the attribute (and state_dict key segment) of a torch.compile wrapper


def uncompiled(module: nn.Module) -> nn.Module:
    """``module`` with every ``torch.compile`` undone, in place: wrapped submodules replaced by the
    modules they wrap, in-place compiled ones reset. Returns the unwrapped module (``module`` itself
    unless it is a wrapper)."""
    while isinstance(module, OptimizedModule):
        module = getattr(module, WRAPPED)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, OptimizedModule):
                while isinstance(child, OptimizedModule):
                    child = getattr(child, WRAPPED)
                setattr(parent, name, child)
    for submodule in module.modules():
        if is_compiled_in_place(submodule):
            submodule._compiled_call_impl = None
    return module


def uses_torch_compile(module: nn.Module) -> bool:
    """Whether ``module`` or a submodule of it went through ``torch.compile`` (wrapped or in place)."""
    return any(isinstance(m, OptimizedModule) or is_compiled_in_place(m) for m in module.modules())


def is_compiled_in_place(module: nn.Module) -> bool:
    """Whether ``module.compile()`` was called on it (``nn.Module._compiled_call_impl`` is set)."""
    return getattr(module, "_compiled_call_impl", None) is not None


def uncompiled_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """State dict keys saved through compile wrappers (``net._orig_mod.0.weight``) as the unwrapped module
    names them (``net.0.weight``)."""
    return {
        ".".join(part for part in key.split(".") if part != WRAPPED): value
        for key, value in state_dict.items()
    }
