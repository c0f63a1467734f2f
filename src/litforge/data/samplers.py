"""A shuffling sampler whose order for epoch ``e`` depends only on ``(seed, e)``: resumable exactly.

loader = StatefulDataLoader(dataset, batch_size=64, sampler=EpochShuffleSampler(len(dataset), seed=42))
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """Random permutation of ``range(num_samples)`` drawn from a generator seeded with ``seed + epoch``.

    ``torch``'s ``RandomSampler`` draws every epoch from one running generator, so the order of later
    epochs depends on how often the loader was iterated; after a mid-epoch resume it differs from the
    uninterrupted run (torchdata's ``StatefulDataLoader`` restores the current epoch, not the generator
    it leaves behind). Here the order is a pure function of the epoch, which Lightning sets through
    ``set_epoch`` (like ``DistributedSampler``); the iterator's ``state_dict`` holds the epoch and the
    position, which ``StatefulDataLoader`` saves and restores.

    Args:
        num_samples: size of the dataset.
        seed: base seed of the permutations.
    """

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return _EpochShuffleIterator(self)

    def __len__(self) -> int:
        return self.num_samples


class _EpochShuffleIterator(Iterator[int]):
    """One epoch's permutation; its ``state_dict`` (epoch, samples yielded) lets torchdata resume it."""

    def __init__(self, sampler: EpochShuffleSampler) -> None:
        self.sampler = sampler
        self._start(sampler.epoch, yielded=0)

    def _start(self, epoch: int, yielded: int) -> None:
        self.epoch, self.yielded = epoch, yielded
        generator = torch.Generator().manual_seed(self.sampler.seed + epoch)
        self.order = torch.randperm(self.sampler.num_samples, generator=generator).tolist()

    def __next__(self) -> int:
        if self.yielded >= len(self.order):
            raise StopIteration
        self.yielded += 1
        return self.order[self.yielded - 1]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "yielded": self.yielded}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.sampler.epoch = int(state_dict["epoch"])
        self._start(self.sampler.epoch, yielded=int(state_dict["yielded"]))
