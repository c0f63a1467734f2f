"""A note at the first training step when a submodule whose parameters train is in eval mode: its Dropout and
BatchNorm layers do nothing. ``AutoModel.from_pretrained`` returns eval mode and Lightning keeps each
module's mode, so a hand-written Hugging Face module fine-tunes without dropout unless it calls
``.train()``. ``litforge check`` fails its ``training_step`` check for it; ``litforge fit`` says so once::

    litforge fit --model mymod.SentimentModel --data mymod.TextData
    # litforge: note: self.encoder (19 Dropout/BatchNorm layers) is in eval mode while it trains: ...
"""

from __future__ import annotations

import sys
from typing import Any

import lightning as L
import torch

_TRAIN_ONLY_LAYERS = (
    torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.AlphaDropout,
    torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm,
)  # fmt: skip


def idle_in_training(model: torch.nn.Module) -> list[str]:
    """Submodules left in eval mode while training although their parameters train (``from_pretrained``
    returns eval mode, and Lightning keeps each module's mode): their Dropout/BatchNorm layers do nothing.
    ``"self.encoder (12 Dropout/BatchNorm layers)"`` for each outermost such module; a frozen backbone (no
    trainable parameter) in eval mode is deliberate and not listed."""
    found = []
    parents = {name: module for name, module in model.named_modules()}
    for name, module in model.named_modules():
        parent = parents.get(name.rpartition(".")[0]) if name else None
        if module.training or (parent is not None and not parent.training):
            continue  # in train mode, or inside an eval module already counted
        layers = [m for m in module.modules() if isinstance(m, _TRAIN_ONLY_LAYERS)]
        if layers and any(p.requires_grad for p in module.parameters()):
            found.append(
                f"{'self.' + name if name else 'the module'} ({len(layers)} Dropout/BatchNorm layers)"
            )
    return found


class IdleLayersNote(L.Callback):
    """Check the module's modes at the first training batch (after ``on_train_start`` could fix them)."""

    def __init__(self) -> None:
        self._checked = False

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._checked:
            return
        self._checked = True
        idle = idle_in_training(pl_module)
        if idle and trainer.is_global_zero:
            print(
                f"litforge: note: {', '.join(idle)} {'is' if len(idle) == 1 else 'are'} in eval mode while "
                "training: dropout and BatchNorm are off (from_pretrained returns eval mode; call .train() on "
                "it in __init__ or on_train_start)",
                file=sys.stderr,
                flush=True,
            )
