"""A shuffle sampler for torchdata's ``StatefulDataLoader`` that draws exactly like torch's ``RandomSampler``
and resumes exactly mid-epoch, so that the standard loader path and the fast path agree batch for batch.

``StatefulDataLoader(ds, batch_size=64, sampler=SeededRandomSampler(len(ds), g), generator=g)`` yields the
batches of ``torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, generator=g)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler


class SeededRandomSampler(Sampler[int]):
    """A new permutation of ``range(num_samples)`` per epoch from ``generator``, drawn like ``RandomSampler``.

    Like torch's sampler, the permutation is drawn at the first index (after the loader has drawn its
    worker base seed from the same generator) and one more permutation is drawn when the epoch runs out.
    Unlike torchdata's own ``RandomSampler``, its iterator saves the epoch (set by Lightning through
    ``set_epoch``) and the generator states of the epoch start and of its current position: a restored
    loader continues the saved epoch when it runs that epoch again, and otherwise starts the next one
    from the generator state the saved epoch left behind (Lightning may stop an epoch before the sampler
    runs out), so it goes on with the same epochs as an uninterrupted one.
    """

    # Read by litforge's ``RestoreLoaderState``: a state saved in an earlier epoch may be loaded.
    restores_across_epochs = True

    def __init__(self, num_samples: int, generator: torch.Generator) -> None:
        self.num_samples = num_samples
        self.generator = generator
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """The number of the epoch the next iterator runs (Lightning calls it before every epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        return _SeededRandomIterator(self)


class _SeededRandomIterator(Iterator[int]):
    def __init__(self, sampler: SeededRandomSampler) -> None:
        self.sampler = sampler
        self.order: list[int] | None = None
        self.epoch: int | None = None
        self.start_rng: torch.Tensor | None = None
        self.position = 0
        self.exhausted = False

    def _draw(self) -> None:
        self.epoch = self.sampler.epoch
        self.start_rng = self.sampler.generator.get_state()
        self.order = torch.randperm(self.sampler.num_samples, generator=self.sampler.generator).tolist()

    def __next__(self) -> int:
        if self.order is None:
            self._draw()
        assert self.order is not None
        if self.position < len(self.order):
            self.position += 1
            return self.order[self.position - 1]
        if not self.exhausted:  # RandomSampler's trailing draw: torch.randperm(n)[: n % n]
            torch.randperm(self.sampler.num_samples, generator=self.sampler.generator)
            self.exhausted = True
        raise StopIteration

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "start_rng": self.start_rng,
            "position": self.position,
            "exhausted": self.exhausted,
            "rng": self.sampler.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        generator = self.sampler.generator
        if state["start_rng"] is None:  # saved before the epoch drew its permutation
            generator.set_state(state["rng"])
            return
        requested = self.sampler.epoch
        moved_on = requested is not None and state["epoch"] is not None and requested != state["epoch"]
        if moved_on or state["position"] >= self.sampler.num_samples:
            # That epoch is over: the loader goes on with the next one from the generator it left behind.
            generator.set_state(state["rng"])
            draw_base_seed(generator)  # what the next epoch's loader iterator draws first
            return
        generator.set_state(state["start_rng"])
        self._draw()
        self.epoch = state["epoch"]
        self.position = state["position"]
        self.exhausted = state["exhausted"]
        if self.exhausted:
            torch.randperm(self.sampler.num_samples, generator=generator)


def draw_base_seed(generator: torch.Generator) -> None:
    """The worker base seed every ``DataLoader`` iterator draws from the shuffle generator."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)
