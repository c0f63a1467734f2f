"""Restore the training loader's position exactly, in the cases Lightning's own restore misses.

litforge fit --run my-run --resume auto     # litforge adds ``RestoreLoaderState`` to every fit

1. Lightning #20550: reading ``trainer.estimated_stepping_batches`` in ``configure_optimizers`` (e.g. for
   ``OneCycleLR``) builds the train loader before the checkpoint is restored, so the saved loader state
   is never handed to it and the resumed epoch starts from its first batch again.
2. Lightning creates the resumed epoch's iterator before it calls ``sampler.set_epoch(epoch)``, so a
   sampler shuffled by epoch (``DistributedSampler`` under DDP) replays epoch 0's order after a resume.
3. A loader that continues one shuffle generator across epochs (like ``DataLoader(shuffle=True)``:
   litforge's ``TensorBatchLoader`` and ``SeededRandomSampler``) needs its saved generator state even
   when the checkpoint's epoch is over, which Lightning decides (``limit_train_batches``, a checkpoint
   after the last batch) while the loader may not have run out: dropping that state replays epoch 0's
   order, loading it as is continues the old epoch. Such loaders compare the saved epoch with the one
   set through ``set_epoch`` and mark themselves with ``restores_across_epochs = True``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from litforge._compat.lightning import Stateful, drop_pending_loader_states, fit_loop_data, set_sampler_epoch


class RestoreLoaderState(Callback):
    """After a resume, sets the samplers' epoch to the epoch about to run and starts the batch iterator
    afresh at train start: from the saved position when the run continues the epoch it was saved in
    (whether or not Lightning restored it, #20550), from the epoch's first batch otherwise (loaders with
    ``restores_across_epochs`` get their state then too, to draw that batch from the saved generator).

    The loader states come from the checkpoint (``loops.fit_loop.state_dict.combined_loader``), so this
    works for any loader with ``state_dict``/``load_state_dict`` (torchdata's ``StatefulDataLoader``).
    """

    def __init__(self) -> None:
        self._loader_states: list[dict[str, Any]] | None = None
        self._saved_epoch = -1

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        fit_state = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {})
        self._loader_states = fit_state.get("combined_loader") or []
        self._saved_epoch = int(checkpoint.get("epoch", -1))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        states, self._loader_states = self._loader_states, None
        fit_loop = trainer.fit_loop
        loader, fetcher = fit_loop_data(trainer)
        if states is None or loader is None or fetcher is None:
            return  # not resuming
        epoch = fit_loop.epoch_progress.current.processed  # the epoch Lightning runs next
        if resumes_at_epoch_end(trainer, self._saved_epoch):
            epoch += 1  # Lightning only runs that epoch's end: the loader's next batch is the next epoch's
        # The saved position only applies when Lightning continues the epoch it was saved in; a save
        # after the epoch's last batch (or at its end) continues with the next epoch's first batch.
        same_epoch = epoch == self._saved_epoch
        for dataloader in loader.flattened:
            set_sampler_epoch(dataloader, epoch)
            if callable(set_epoch := getattr(dataloader, "set_epoch", None)):
                set_epoch(epoch)  # a loader that shuffles without a sampler (``TensorBatchLoader``)
        stateful = [dataloader for dataloader in loader.flattened if isinstance(dataloader, Stateful)]
        if states and len(states) != len(stateful):
            raise RuntimeError(
                f"the checkpoint holds {len(states)} loader states for {len(stateful)} loaders"
            )
        for dataloader, state in zip(stateful, states or [], strict=False):
            if same_epoch or _restores_across_epochs(dataloader):
                dataloader.load_state_dict(state)
        drop_pending_loader_states(trainer)
        iter(fetcher)  # an iterator for the right epoch, from the loaded position if any


def resumes_at_epoch_end(trainer: L.Trainer, saved_epoch: int) -> bool:
    """Whether the checkpoint just restored was saved after epoch ``saved_epoch``'s last batch but before
    that epoch's end (by a validation there): Lightning then runs only that epoch's end hooks before the
    next epoch. (A save in ``on_train_epoch_end`` has the epoch counted as processed already.)"""
    fit_loop = trainer.fit_loop
    last_batch_done = fit_loop.epoch_loop.batch_progress.is_last_batch
    return last_batch_done and fit_loop.epoch_progress.current.processed == saved_epoch


def _restores_across_epochs(dataloader: Any) -> bool:
    """Whether the loader (or its sampler) takes a state saved in an earlier epoch (see the module doc)."""
    return any(
        getattr(obj, "restores_across_epochs", False)
        for obj in (dataloader, getattr(dataloader, "sampler", None))
    )
