"""GAN under manual optimization: both networks learn, each optimizer steps once per batch."""

from __future__ import annotations

import copy

import lightning as L
import torch

from litforge.data import DigitsDataModule
from litforge.models import GAN
from litforge.models.gan import rbf_mmd


def _trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, **kwargs,
    )  # fmt: skip


def test_one_batch_updates_both_networks_once() -> None:
    L.seed_everything(0)
    model = GAN(hidden_dim=32, latent_dim=8)
    before = copy.deepcopy(model.state_dict())
    _trainer(max_steps=2, limit_train_batches=1, max_epochs=1).fit(model, DigitsDataModule(batch_size=32))
    for prefix in ("generator.", "discriminator."):
        changed = [
            k for k in before if k.startswith(prefix) and not torch.equal(before[k], model.state_dict()[k])
        ]
        assert changed, f"no {prefix[:-1]} parameter changed"
    g_opt, d_opt = (opt.optimizer for opt in model.optimizers())
    assert g_opt.param_groups[0]["params"][0] is next(model.generator.parameters())
    assert {int(s["step"]) for s in g_opt.state.values()} == {1}
    assert {int(s["step"]) for s in d_opt.state.values()} == {1}


def test_each_optimizer_steps_once_per_batch() -> None:
    model = GAN(hidden_dim=16, latent_dim=4)
    trainer = _trainer(max_epochs=1, limit_train_batches=3)
    trainer.fit(model, DigitsDataModule(batch_size=16))
    for opt in model.optimizers():
        assert {int(s["step"]) for s in opt.optimizer.state.values()} == {3}
    assert trainer.global_step == 6  # Lightning counts every optimizer step under manual optimization


def test_generated_images_use_the_data_pixel_range() -> None:
    images = GAN(hidden_dim=16).sample(10, seed=1)  # raw pixels, like DigitsDataModule's
    assert images.shape == (10, 64)
    assert images.min() >= 0 and images.max() <= 16
    model = GAN(hidden_dim=16)
    assert torch.equal(model.sample(4, seed=3), model.sample(4, seed=3))
    assert not torch.equal(model.sample(4, seed=3), model.sample(4, seed=4))


def test_mmd_is_zero_for_identical_samples_and_grows_with_shift() -> None:
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    assert rbf_mmd(x, x).item() == 0.0
    assert rbf_mmd(x, x + 0.5) < rbf_mmd(x, x + 2.0)
