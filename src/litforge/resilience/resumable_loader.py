"""Make the user's plain ``DataLoader`` resumable mid-epoch: the same batches, now with a saved position.

litforge fit --data my_data.MyData --run my-run --resume auto   # litforge adds ``ResumableTrainLoader``

A ``DataLoader(dataset, shuffle=True)`` has no ``state_dict``: Lightning cannot save where an epoch stood,
and a run resumed from a mid-epoch checkpoint sees other batches ("your dataloader is not resumable").
``as_resumable`` rebuilds such a loader as torchdata's ``StatefulDataLoader`` with the same arguments and,
for ``shuffle=True``, ``ResumableRandomSampler``: torch's own sampler, so an uninterrupted run gets the
very same batches (same order, same random draws, also from the global generator), and a resumed one
continues the saved epoch at the saved batch.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import CombinedLoader
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)
from torchdata.stateful_dataloader import Stateful, StatefulDataLoader

from litforge.data.seeded_sampler import ResumableRandomSampler
from litforge.resilience.rng_state import RNGState

# Samplers whose order a restored ``StatefulDataLoader`` reproduces by skipping indices: fixed, or drawn
# from (seed, epoch) once Lightning has called ``set_epoch``.
_REPLAYABLE_SAMPLERS = (SequentialSampler, DistributedSampler)


class NotResumable(Exception):
    """Why a loader cannot be made resumable (the message says which part), and what to do about it."""

    def __init__(self, reason: str, advice: str | None = None) -> None:
        super().__init__(reason)
        self.advice = advice or (
            "use torchdata's StatefulDataLoader, or give the dataset state_dict/load_state_dict"
        )


def as_resumable(loader: Any) -> Any:
    """``loader`` itself when it already has ``state_dict``/``load_state_dict``; a plain ``DataLoader``
    rebuilt as a ``StatefulDataLoader`` that yields the same batches.

    Raises:
        NotResumable: for a loader whose position cannot be saved exactly (an ``IterableDataset``
            without state, a sampler or batch sampler that draws in ways unknown to litforge, a
            ``DataLoader`` subclass or another iterable).
    """
    stateless_stream = isinstance(getattr(loader, "dataset", None), IterableDataset) and not isinstance(
        loader.dataset, Stateful
    )
    if stateless_stream:  # a StatefulDataLoader too: it replays the stream, which draws anew (worker seeds)
        raise NotResumable(
            f"its IterableDataset {type(loader.dataset).__name__} has no state_dict/load_state_dict",
            advice=f"give {type(loader.dataset).__name__} state_dict/load_state_dict (a StatefulDataLoader "
            "alone replays the stream, which is exact only if the stream draws nothing at random)",
        )
    if isinstance(loader, Stateful):
        return loader
    if type(loader) is not DataLoader:
        raise NotResumable(f"{type(loader).__name__} is not a torch DataLoader and has no state_dict")
    if isinstance(loader.dataset, IterableDataset):
        sampling: dict[str, Any] = {"batch_size": loader.batch_size, "drop_last": loader.drop_last}
    elif loader.batch_sampler is None:  # batch_size=None: one sample at a time
        sampling = {"batch_size": None, "sampler": _resumable_sampler(loader.sampler)}
    elif type(loader.batch_sampler) is BatchSampler:  # from batch_size=..., or given explicitly
        batches = loader.batch_sampler
        sampling = {
            "batch_size": batches.batch_size,
            "drop_last": batches.drop_last,
            "sampler": _resumable_sampler(batches.sampler),
        }
    elif isinstance(loader.batch_sampler, Stateful):
        sampling = {"batch_sampler": loader.batch_sampler}
    else:
        raise NotResumable(f"its batch sampler {type(loader.batch_sampler).__name__} has no state_dict")
    workers = {"prefetch_factor": loader.prefetch_factor} if loader.num_workers > 0 else {}
    return StatefulDataLoader(
        loader.dataset,
        **sampling,
        **workers,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator,
        persistent_workers=loader.persistent_workers,
        pin_memory_device=loader.pin_memory_device,
        in_order=loader.in_order,
    )


def _shuffling_sampler(loader: Any) -> ResumableRandomSampler | None:
    """The ``ResumableRandomSampler`` that litforge put into ``loader``, if any."""
    batches = getattr(loader, "batch_sampler", None)
    sampler = getattr(loader, "sampler", None) if batches is None else getattr(batches, "sampler", None)
    return sampler if isinstance(sampler, ResumableRandomSampler) else None


def _global_state_at_resume(trainer: L.Trainer) -> Any:
    """The global generator's state in the checkpoint this fit resumed from (None for a fresh fit)."""
    for callback in trainer.callbacks:
        if isinstance(callback, RNGState):
            return callback.torch_state_at_resume
    return None


def _resumable_sampler(sampler: Sampler[int]) -> Sampler[int]:
    if type(sampler) is RandomSampler:  # shuffle=True
        return ResumableRandomSampler(
            sampler.data_source,
            replacement=sampler.replacement,
            num_samples=sampler.num_samples,
            generator=sampler.generator,
        )
    if isinstance(sampler, (*_REPLAYABLE_SAMPLERS, Stateful)):
        return sampler
    raise NotResumable(f"its sampler {type(sampler).__name__} has no state_dict")


def _each_loader(loaders: Any, convert: Callable[[Any], Any]) -> Any:
    """``convert`` applied to each loader of what a dataloader hook returns (one, a list, tuple or dict of
    them, a ``CombinedLoader``), in the same structure."""
    if isinstance(loaders, CombinedLoader):
        loaders.flattened = [convert(loader) for loader in loaders.flattened]
        return loaders
    if type(loaders) in (list, tuple):  # several loaders, as Lightning accepts them
        return type(loaders)(convert(loader) for loader in loaders)
    if type(loaders) is dict:
        return {name: convert(loader) for name, loader in loaders.items()}
    return convert(loaders)


def _private_worker_seed(loader: Any, persistent_only: bool = True) -> Any:
    """A validation loader with persistent workers draws its workers' base seed from torch's global
    generator once, when its iterator is first made; a resumed run makes it again after the resume, one
    draw the uninterrupted run made before it, and every random number after differs (the next epoch's
    shuffle, dropout). Its own generator, seeded alike in every run, leaves the global one alone.
    ``persistent_only=False``: any loader (a distributed run's training loader)."""
    persistent = getattr(loader, "persistent_workers", False) and getattr(loader, "num_workers", 0) > 0
    if isinstance(loader, DataLoader) and (persistent or not persistent_only) and loader.generator is None:
        loader.generator = torch.Generator().manual_seed(torch.initial_seed())
    return loader


class ResumableTrainLoader(Callback):
    """Wraps the ``train_dataloader`` hook of the fit's DataModule (or LightningModule) so that the loaders
    it returns go through ``as_resumable``; when one cannot be made resumable, says so once on stderr. The
    ``val_dataloader`` hook's loaders with persistent workers get a generator of their own
    (``_private_worker_seed``).

    The hook is wrapped on the instance for the fit only (``setup`` to ``teardown``); Lightning calls it
    as before (also on ``reload_dataloaders_every_n_epochs`` and for ``estimated_stepping_batches``).
    """

    def __init__(self, note: bool = True) -> None:
        """``note=False``: convert the loaders but say nothing of one that cannot resume (a search's trial,
        which is never resumed: a dead worker's trial is retried from scratch)."""
        self._wrapped: Any = None
        self._own_hook: Any = None  # an instance attribute the hook was before (``from_datasets``)
        self._val_wrapped, self._own_val_hook = False, None  # val_dataloader, wrapped the same way
        self._hook_called = False
        self._told = False
        self._note = note

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self._wrapped is not None:
            return
        self._told = False  # once per fit
        source = trainer.datamodule if trainer.datamodule is not None else pl_module
        hook = source.train_dataloader

        @functools.wraps(hook)
        def train_dataloader() -> Any:
            self._hook_called = True
            return self._resumable(hook(), trainer)

        self._own_hook = vars(source).get("train_dataloader")
        source.train_dataloader = train_dataloader
        self._wrapped = source
        if is_overridden("val_dataloader", source):
            val_hook = source.val_dataloader

            @functools.wraps(val_hook)
            def val_dataloader() -> Any:
                return _each_loader(val_hook(), _private_worker_seed)

            self._own_val_hook = vars(source).get("val_dataloader")
            source.val_dataloader = val_dataloader
            self._val_wrapped = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._hook_called:
            return  # the loaders came through the hook (and were told about there)
        loaders = trainer.train_dataloader  # passed to ``Trainer.fit`` itself: out of litforge's reach
        flattened = (
            loaders.flattened if isinstance(loaders, CombinedLoader) else CombinedLoader(loaders).flattened
        )
        if any(not isinstance(loader, Stateful) for loader in flattened):
            self._tell(
                "it was passed to Trainer.fit directly, not returned by a train_dataloader hook", trainer
            )

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self._wrapped is None:
            return
        if self._own_hook is not None:
            self._wrapped.train_dataloader = self._own_hook
        else:
            del self._wrapped.train_dataloader  # the class's method again
        if self._val_wrapped:
            if self._own_val_hook is not None:
                self._wrapped.val_dataloader = self._own_val_hook
            else:
                del self._wrapped.val_dataloader
        self._val_wrapped, self._own_val_hook = False, None
        self._wrapped = self._own_hook = None
        self._hook_called = False

    def _resumable(self, loaders: Any, trainer: L.Trainer) -> Any:
        def convert(loader: Any) -> Any:
            try:
                resumable = as_resumable(loader)
            except NotResumable as reason:
                self._tell(str(reason), trainer, reason.advice)
                return loader
            sampler = _shuffling_sampler(resumable)
            if sampler is not None:
                sampler.global_state_at_checkpoint = functools.partial(_global_state_at_resume, trainer)
            if trainer.world_size > 1:
                # Lightning swaps the sampler for a DistributedSampler, whose order needs no global draw;
                # the base seed each iterator draws would still come from the global generator, once more
                # after a mid-epoch resume than in the uninterrupted run (the dropout after it then differs)
                _private_worker_seed(resumable, persistent_only=False)
            return resumable

        return _each_loader(loaders, convert)

    def _tell(self, reason: str, trainer: L.Trainer, advice: str | None = None) -> None:
        if self._told or not self._note or not trainer.is_global_zero:
            return
        self._told = True
        advice = f"{advice or NotResumable(reason).advice} (docs/fault-tolerance.md)"
        if resumed_mid_epoch(trainer):  # this very run is the case: say so, and name the exact way
            exact = _epoch_end_checkpoint(Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt")
            instead = f"; --resume {exact} resumes exactly, from the last epoch end" if exact else ""
            print(
                f"litforge: this run resumes mid-epoch (step {trainer.global_step}) with a training loader that "
                f"cannot ({reason}): from here its batches differ from an uninterrupted run's{instead}; {advice}",
                file=sys.stderr,
                flush=True,
            )
            return
        print(
            f"litforge: the training loader cannot resume mid-epoch ({reason}); a run resumed from a "
            f"mid-epoch checkpoint will see other batches than an uninterrupted one: {advice}",
            file=sys.stderr,
            flush=True,
        )


def resumed_mid_epoch(trainer: L.Trainer) -> bool:
    """Whether this fit resumed from a checkpoint saved partway through an epoch (its loops say so)."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return bool(trainer.ckpt_path) and not progress.is_last_batch and progress.current.completed > 0


def _epoch_end_checkpoint(path: Path) -> Path | None:
    """``path`` when it is a checkpoint saved at an epoch's last batch (read lazily, memory-mapped)."""
    if not path.is_file():
        return None
    try:
        loops = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("loops") or {}
    except Exception:  # unreadable or not a checkpoint: no advice rather than a failure
        return None
    progress = loops.get("fit_loop", {}).get("epoch_loop.batch_progress", {})
    return path if progress.get("is_last_batch") else None
