"""``bf16-mixed`` on CPU: every reference model trains under autocast with float32 master weights."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from torch import nn

from litforge.data import DigitsDataModule, SequenceTaskDataModule
from litforge.models import GAN, AutoEncoder, SequenceTransformer

CASES = {
    "gan": (lambda: GAN(hidden_dim=16, latent_dim=4), lambda m: m.generator[0], DigitsDataModule),
    "autoencoder": (lambda: AutoEncoder(hidden_dim=16), lambda m: m.encoder[0], DigitsDataModule),
    "transformer": (
        lambda: SequenceTransformer(d_model=16, n_heads=2, n_layers=1, max_len=8),
        lambda m: m.head,
        lambda batch_size: SequenceTaskDataModule(seq_len=8, num_train=64, num_val=16, batch_size=batch_size),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bf16_mixed_trains_on_cpu(name: str) -> None:
    make_model, layer_of, make_data = CASES[name]
    model = make_model()
    before = copy.deepcopy(model.state_dict())
    dtypes: list[torch.dtype] = []
    layer: nn.Module = layer_of(model)
    layer.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    trainer = L.Trainer(
        accelerator="cpu", precision="bf16-mixed", max_epochs=1, limit_train_batches=2, limit_val_batches=1,
        num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, make_data(batch_size=16))
    # the first forwards are training steps, under autocast (epoch-end previews run outside it)
    assert dtypes[:2] == [torch.bfloat16, torch.bfloat16]
    after = model.state_dict()
    weights = [k for k, v in after.items() if v.is_floating_point() and k in before]
    assert all(after[k].dtype == torch.float32 for k in weights)  # master weights stay float32
    assert any(not torch.equal(before[k], after[k]) for k in weights)
    assert all(torch.isfinite(after[k]).all() for k in weights)
