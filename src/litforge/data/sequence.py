"""Generated token-sequence tasks for the transformer (no download): reverse, sort, copy.

litforge fit --config configs/transformer.yaml                                        # reverse
litforge fit --config configs/transformer.yaml --model.causal true --data.task copy   # next-token copy
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

IGNORE_INDEX = -100


def make_task(
    task: str, n: int, seq_len: int, vocab_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` (tokens (n, seq_len), targets (n, seq_len)) pairs of ``task``; uniform random tokens, so a
    model that ignores the input scores 1 / vocab_size token accuracy."""
    if task == "copy":
        # tokens: a_1..a_h a_1..a_h; each position predicts the next token, scored on the second half only.
        half = torch.randint(0, vocab_size, (n, seq_len // 2), generator=generator)
        tokens = torch.cat([half, half], dim=1)
        targets = torch.full_like(tokens, IGNORE_INDEX)
        targets[:, seq_len // 2 - 1 : -1] = tokens[:, seq_len // 2 :]
        return tokens, targets
    tokens = torch.randint(0, vocab_size, (n, seq_len), generator=generator)
    if task == "reverse":
        return tokens, tokens.flip(1)
    if task == "sort":
        return tokens, tokens.sort(dim=1).values
    raise ValueError(f"unknown task {task!r}; choose reverse, sort or copy")


class SequenceTaskDataModule(L.LightningDataModule):
    """Random token sequences with per-token targets: ``reverse`` and ``sort`` need bidirectional
    attention; ``copy`` (the sequence's second half repeats the first) is next-token prediction for a
    causal model. Train, val and test sets are drawn from independent seeds.

    Args:
        task: ``reverse``, ``sort`` or ``copy``.
        vocab_size: distinct tokens (exposed as ``num_classes`` and linked into the model).
        seq_len: tokens per sequence (even for ``copy``).
        num_train: training sequences.
        num_val: validation sequences.
        num_test: test sequences.
        batch_size: sequences per batch.
        drop_last: drop the short last training batch (keeps one static shape for ``torch.compile``).
        seed: base seed of the generated sets and the shuffle order.
    """

    def __init__(
        self,
        task: Literal["reverse", "sort", "copy"] = "reverse",
        vocab_size: int = 16,
        seq_len: int = 16,
        num_train: int = 8192,
        num_val: int = 1024,
        num_test: int = 1024,
        batch_size: int = 64,
        drop_last: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if task == "copy" and seq_len % 2:
            raise ValueError(f"task 'copy' needs an even seq_len, got {seq_len}")
        self.task, self.vocab_size, self.seq_len = task, vocab_size, seq_len
        self.batch_size, self.drop_last, self.seed = batch_size, drop_last, seed
        self.splits = {
            name: TensorDataset(
                *make_task(task, n, seq_len, vocab_size, torch.Generator().manual_seed(seed + i))
            )
            for i, (name, n) in enumerate((("train", num_train), ("val", num_val), ("test", num_test)))
        }

    @property
    def num_classes(self) -> int:
        return self.vocab_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.splits["train"],
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=self.drop_last,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["val"], batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["test"], batch_size=self.batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
