"""SequenceTransformer: SDPA attention, activation checkpointing parity, compile parity, causal masking."""

from __future__ import annotations

import pytest
import torch

from litforge.data.sequence import IGNORE_INDEX, make_task
from litforge.models import SequenceTransformer

TINY = {"num_classes": 11, "max_len": 16, "d_model": 16, "n_heads": 2, "n_layers": 2}


def _loss_and_grads(model: SequenceTransformer, tokens: torch.Tensor, targets: torch.Tensor):
    model.zero_grad()
    torch.manual_seed(123)  # same dropout masks in both runs
    loss = model.loss(model(tokens), targets)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_activation_checkpointing_gives_the_same_loss_and_gradients() -> None:
    torch.manual_seed(0)
    model = SequenceTransformer(**TINY, dropout=0.2)  # dropout: checkpointing must replay its RNG
    tokens, targets = make_task("reverse", 4, 12, 11, torch.Generator().manual_seed(0))
    model.train()
    loss, grads = _loss_and_grads(model, tokens, targets)
    model.hparams.activation_checkpointing = True
    loss_ckpt, grads_ckpt = _loss_and_grads(model, tokens, targets)
    torch.testing.assert_close(loss_ckpt, loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, msg=name)


def test_activation_checkpointing_recomputes_blocks_in_backward() -> None:
    calls = []
    model = SequenceTransformer(**TINY, activation_checkpointing=True)
    model.blocks[0].register_forward_pre_hook(lambda *_: calls.append(1))  # recompute stops early
    tokens, targets = make_task("reverse", 2, 8, 11, torch.Generator().manual_seed(0))
    model.loss(model(tokens), targets).backward()
    assert len(calls) == 2  # forward, then the recomputation during backward


def test_compiled_model_matches_eager() -> None:
    torch.manual_seed(0)
    model = SequenceTransformer(**{**TINY, "n_layers": 1}, compile=True).eval()
    tokens = torch.randint(0, 11, (3, 8))
    with torch.no_grad():
        eager = model(tokens)
        model.configure_model()  # what the Trainer calls; compiles the blocks in place
        compiled = model(tokens)
    assert model.blocks[0]._compiled_call_impl is not None
    assert list(model.state_dict()) == list(SequenceTransformer(**{**TINY, "n_layers": 1}).state_dict())
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_causal_model_does_not_see_the_future() -> None:
    model = SequenceTransformer(**TINY, causal=True).eval()
    tokens = torch.randint(0, 11, (1, 10))
    changed = tokens.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 11
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_too_long_sequence_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="exceeds max_len 16"):
        SequenceTransformer(**TINY)(torch.zeros(1, 17, dtype=torch.long))


def test_generated_tasks() -> None:
    g = torch.Generator().manual_seed(0)
    tokens, targets = make_task("reverse", 5, 6, 9, g)
    assert torch.equal(targets, tokens.flip(1))
    tokens, targets = make_task("sort", 5, 6, 9, g)
    assert torch.equal(targets, tokens.sort(dim=1).values)
    tokens, targets = make_task("copy", 5, 6, 9, g)
    assert torch.equal(tokens[:, :3], tokens[:, 3:])
    assert (targets[:, :2] == IGNORE_INDEX).all() and (targets[:, -1] == IGNORE_INDEX).all()
    assert torch.equal(targets[:, 2:5], tokens[:, 3:])  # position t predicts token t + 1
