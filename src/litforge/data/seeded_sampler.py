"""torch's ``RandomSampler`` (what ``DataLoader(shuffle=True)`` uses), resumable mid-epoch for torchdata's
``StatefulDataLoader``: the same indices from the same random draws, plus ``state_dict``/``load_state_dict``.

``StatefulDataLoader(ds, batch_size=64, sampler=ResumableRandomSampler(ds, generator=g), generator=g)`` yields
the batches of ``torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, generator=g)``, also without a
generator (both then draw from torch's global generator). litforge swaps it into users' plain loaders
(``litforge.resilience.resumable_loader``); ``SeededRandomSampler(n, g)`` is the reference DataModules' form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import Any

import torch
from torch.utils.data import RandomSampler


class ResumableRandomSampler(RandomSampler):
    """``RandomSampler`` whose iterator saves and restores its position, also across epochs.

    Iterating runs torch's own ``RandomSampler.__iter__``, so the indices and the random draws (from
    ``generator``, or from torch's global generator when it is ``None``) are those of torch's sampler. The
    iterator's state holds the epoch (set by Lightning through ``set_epoch``), the generator's state at the
    epoch's first index and now, and the position. A restored loader replays the saved epoch's draws up to
    the saved position when it runs that epoch again, and otherwise starts the next epoch from the
    generator state the saved epoch left behind (Lightning may end an epoch before the sampler runs out),
    so it goes on with the batches of an uninterrupted run. Being a ``RandomSampler``, Lightning still
    recognises it as shuffling and swaps in a ``DistributedSampler`` on several devices.
    """

    # Read by litforge's ``RestoreLoaderState``: a state saved in an earlier epoch may be loaded.
    restores_across_epochs = True
    # Set by litforge's ``ResumableTrainLoader``: the global generator's state in the checkpoint a run resumes
    # from (``RNGState``'s), or None. A loader with worker processes saves its sampler's state when it hands
    # an index to a worker, batches ahead of the checkpoint, so the global state in it is older than the
    # checkpoint's and would replay the model's draws of those batches.
    global_state_at_checkpoint: Callable[[], torch.Tensor | None] | None = None

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(data_source, replacement=replacement, num_samples=num_samples, generator=generator)
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """The number of the epoch the next iterator runs (Lightning calls it before every epoch)."""
        self.epoch = epoch

    @property
    def random_source(self) -> torch.Generator:
        """The generator the indices are drawn from: ``generator``, or torch's global one."""
        return self.generator if self.generator is not None else torch.default_generator

    def source_state_at_checkpoint(self, saved: torch.Tensor) -> torch.Tensor:
        """The state ``random_source`` had at the checkpoint: ``saved`` (the sampler's own record) unless
        the source is the global generator and the checkpoint's own record of it is known."""
        if self.generator is None and self.global_state_at_checkpoint is not None:
            state = self.global_state_at_checkpoint()
            if state is not None:
                return state
        return saved

    def __iter__(self) -> Iterator[int]:
        return _ResumableIterator(self)


class SeededRandomSampler(ResumableRandomSampler):
    """``ResumableRandomSampler`` over ``range(num_samples)`` with its own ``generator``."""

    def __init__(self, num_samples: int, generator: torch.Generator) -> None:
        super().__init__(range(num_samples), generator=generator)


class _ResumableIterator(Iterator[int]):
    def __init__(self, sampler: ResumableRandomSampler) -> None:
        self.sampler = sampler
        self.indices: Iterator[int] | None = None  # torch's RandomSampler iteration, from the first index
        self.epoch: int | None = None
        self.start_rng: torch.Tensor | None = None
        self.position = 0
        self.next_epoch_of_restored = False

    def _start(self) -> None:
        # Lazy, like torch's generator-function sampler: the loader draws its worker base seed first.
        self.epoch = self.sampler.epoch
        self.start_rng = self.sampler.random_source.get_state()
        self.indices = RandomSampler.__iter__(self.sampler)

    def __next__(self) -> int:
        if self.indices is None:
            if self.next_epoch_of_restored:  # what the next epoch's loader iterator draws first
                draw_base_seed(self.sampler.random_source)
            self._start()
        assert self.indices is not None
        index = next(self.indices)  # when it runs out, torch's sampler draws once more, then stops
        self.position += 1
        return index

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "start_rng": self.start_rng,
            "position": self.position,
            "rng": self.sampler.random_source.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        source = self.sampler.random_source
        at_checkpoint = self.sampler.source_state_at_checkpoint(state["rng"])
        requested, saved = self.sampler.epoch, state["epoch"]
        moved_on = requested is not None and saved is not None and requested != saved
        if state["start_rng"] is None:  # saved before the epoch's first index: draw it from there
            source.set_state(at_checkpoint)
        elif moved_on or state["position"] >= self.sampler.num_samples:
            # That epoch is over: the next one starts from the generator it left behind, in this iterator
            # (which then draws the loader's base seed first) or in a new one the loader makes.
            source.set_state(at_checkpoint)
            self.next_epoch_of_restored = True
        else:  # the rest of the saved epoch: replay its draws up to the position
            source.set_state(state["start_rng"])
            self._start()
            assert self.indices is not None
            for _ in range(state["position"]):
                next(self.indices)
            self.epoch, self.position = saved, state["position"]
            source.set_state(at_checkpoint)  # also any draws others made from it since


def draw_base_seed(generator: torch.Generator) -> None:
    """The worker base seed every ``DataLoader`` iterator draws from the shuffle generator."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)
