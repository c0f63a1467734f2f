"""Conformance of litforge._compat.torch_compile with the installed torch: what torch.compile wraps and
how checkpoints saved through it name their weights."""

from __future__ import annotations

import torch
from torch import nn

from litforge._compat.torch_compile import uncompiled, uncompiled_state_dict


class Holder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        self.head = nn.Linear(2, 2)


def test_wrapped_submodules_are_unwrapped_and_their_keys_renamed() -> None:
    plain = Holder()
    compiled = Holder()
    compiled.load_state_dict(plain.state_dict())
    compiled.net[0] = torch.compile(compiled.net[0], backend="eager")
    compiled.net = torch.compile(compiled.net, backend="eager")  # a wrapper around a wrapper's parent
    saved = compiled.state_dict()
    assert "net._orig_mod.0._orig_mod.weight" in saved  # what a checkpoint of such a module holds
    assert uncompiled_state_dict(saved).keys() == plain.state_dict().keys()
    unwrapped = uncompiled(compiled)
    assert unwrapped is compiled
    assert type(unwrapped.net) is nn.Sequential and type(unwrapped.net[0]) is nn.Linear
    assert unwrapped.state_dict().keys() == plain.state_dict().keys()


def test_a_compiled_top_module_and_in_place_compile_are_undone() -> None:
    original = Holder()
    assert uncompiled(torch.compile(original, backend="eager")) is original
    original.head.compile(backend="eager")
    assert original.head._compiled_call_impl is not None
    uncompiled(original)
    assert original.head._compiled_call_impl is None
    x = torch.randn(2, 2)
    assert torch.equal(original.head(x), nn.functional.linear(x, original.head.weight, original.head.bias))
