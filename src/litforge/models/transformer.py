"""A small transformer encoder on ``F.scaled_dot_product_attention``, for token-level sequence tasks.

litforge fit --config configs/transformer.yaml                                   # reverse a sequence
litforge fit --config configs/transformer.yaml --model.causal true --data.task copy  # autoregressive
litforge fit --config configs/transformer.yaml --model.activation_checkpointing true --model.compile true
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from litforge.models.epoch_stats import EpochStats, EpochStatsLogging
from litforge.models.speed import compile_in_place, run_blocks

IGNORE_INDEX = -100  # targets with this value (e.g. the prompt half of the copy task) are not scored


class SelfAttention(nn.Module):
    """Multi-head self-attention; SDPA picks the flash / memory-efficient kernel where the device has one."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, causal: bool) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.dropout, self.causal = n_heads, dropout, causal
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (
            self.qkv(x).view(B, T, 3, self.n_heads, C // self.n_heads).permute(2, 0, 3, 1, 4)
        )  # (B, H, T, D)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal
        )  # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, causal: bool) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout, causal)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class SequenceTransformer(EpochStatsLogging, L.LightningModule):
    """Per-token classifier over token sequences: tokens (B, T) -> logits (B, T, num_classes).

    Bidirectional by default; ``causal=True`` masks future tokens (``is_causal``) for autoregressive
    tasks such as next-token prediction. Logs train/val/test ``_loss`` and ``_acc`` (token accuracy,
    ignoring targets equal to -100) from sums kept on the device (``EpochStatsLogging``: no host sync per
    step), and the step loss ``train_loss_step`` on the steps the loggers write.

    Args:
        num_classes: vocabulary size (input tokens and output classes); linked from the datamodule.
        max_len: longest sequence the learned position embedding covers.
        d_model: model width.
        n_heads: attention heads.
        n_layers: transformer blocks.
        dropout: dropout in attention and MLP.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        causal: causal self-attention (each position sees only itself and the past).
        activation_checkpointing: recompute each block's activations in backward
            (``torch.utils.checkpoint``, ``use_reentrant=False``) to save memory.
        compile: ``torch.compile`` the network in ``configure_model`` (``dynamic=False``).
    """

    def __init__(
        self,
        num_classes: int = 16,
        max_len: int = 512,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        causal: bool = False,
        activation_checkpointing: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.token_embedding = nn.Embedding(num_classes, d_model)
        self.position_embedding = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout, causal) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)
        self.example_input_array = torch.zeros(2, 8, dtype=torch.long)
        self.train_stats, self.val_stats, self.test_stats = (
            EpochStats(num_classes, average="micro", ignore_index=IGNORE_INDEX) for _ in range(3)
        )

    def configure_model(self) -> None:
        if self.hparams.compile:
            compile_in_place(self.blocks)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T) -> logits (B, T, num_classes)."""
        length, max_len = tokens.shape[1], self.hparams.max_len
        if length > max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {max_len}")
        positions = torch.arange(length, device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)  # (B, T, C)
        x = run_blocks(self.blocks, x, self.hparams.activation_checkpointing)  # (B, T, C)
        return self.head(self.ln_f(x))  # (B, T, V)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        tokens, targets = batch
        logits = self(tokens)
        loss = self.loss(logits, targets)
        # Weighted by sequences, as self.log(..., on_epoch=True) weighs a batch by its size.
        self.stats(stage).update(loss.detach(), logits.detach().flatten(0, 1), targets.flatten(), len(tokens))
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._shared_step(batch, "train")
        self.log_step_loss(loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        tokens = batch[0] if isinstance(batch, (tuple, list)) else batch
        return {"prediction": self(tokens).argmax(dim=-1)}  # (B, T)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
