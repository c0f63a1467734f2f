"""Checkpoints every N training steps and at every epoch end, written in the background, the previous
ones kept until replaced.

litforge fit --run my-run --resume auto                 # litforge adds it to every fit
litforge fit --checkpoint_every_n_steps 50              # a denser interval (0: epoch ends only)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint

from litforge._compat.lightning import only_accumulated, saved_this_epoch_end, validation_follows
from litforge.resilience.after_batch_end import after_module_batch_end
from litforge.resilience.async_checkpoint import (
    BackgroundCheckpointIO,
    install_background_writer,
    uninstall_background_writer,
)
from litforge.resilience.save_interval import MinutesInterval

DEFAULT_EVERY_N_STEPS = 200
_STEP_FILE = re.compile(r"^step-(\d+)\.ckpt$")


class PeriodicCheckpoint(Checkpoint):
    """Writes ``<dirpath>/step-<global step>.ckpt`` at step boundaries and keeps the newest ``keep``.

    Each file is written through the trainer's ``CheckpointIO`` (litforge's ``AtomicCheckpointIO``:
    temporary file, fsync, rename), and older files are deleted only after the new one is complete, so
    a kill at any moment leaves at least one loadable checkpoint. With ``background`` (and litforge's
    ``AtomicCheckpointIO`` on one device or DDP), training waits only while the state is copied to host
    memory; the file is written meanwhile by a writer thread (``async_checkpoint``). A step save due at
    an epoch's last batch waits for the epoch end, one due at a step that a validation follows waits for
    the validation's end (Lightning resumes past both, so a state taken before them is not an exact
    resume point); the epoch-end save is skipped when Lightning's ``ModelCheckpoint`` has just written
    the same state to ``last.ckpt``.

    Args:
        dirpath: folder of the checkpoint files (the run's ``checkpoints/``).
        every_n_train_steps: optimizer steps between two saves; 0 saves at epoch ends only.
        keep: how many periodic checkpoints to keep (>= 1; 2 survives a corrupt newest file).
        on_epoch_end: also save at the end of every training epoch.
        background: write the files in the background (see above); ``False``: training waits for each.
        every_n_minutes: also save once this many minutes of wall time have passed since the last save
            (checked at step boundaries; all processes agree without a collective per step).
    """

    def __init__(
        self,
        dirpath: str | Path,
        every_n_train_steps: int = DEFAULT_EVERY_N_STEPS,
        keep: int = 2,
        on_epoch_end: bool = True,
        background: bool = True,
        every_n_minutes: float | None = None,
    ) -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = every_n_train_steps
        self.keep = keep
        self.on_epoch_end = on_epoch_end
        self.background = background
        self._minutes = MinutesInterval(every_n_minutes) if every_n_minutes else None
        self._writer: BackgroundCheckpointIO | None = None
        self._last_saved_step = -1
        self._after_validation_of_step = -1
        self.last_path: Path | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        step = trainer.global_step
        due = self.every_n_train_steps > 0 and step % self.every_n_train_steps == 0
        due = due or (self._minutes is not None and self._minutes.due(trainer))
        if not due or step == self._last_saved_step or (self.on_epoch_end and epoch_ends_now(trainer)):
            return
        if only_accumulated(trainer):  # mid-window: the gradients so far are in no checkpoint, so the file
            return  # would resume without them (and replace the good file of this step saved at its end)
        if validation_follows(trainer):
            self._after_validation_of_step = step
        else:  # after the module's own batch-end hook (an EMA update there belongs to this step)
            after_module_batch_end(pl_module, lambda: self.save(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self._after_validation_of_step == trainer.global_step:
            self._after_validation_of_step = -1
            if trainer.global_step != self._last_saved_step:
                self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.on_epoch_end and not _last_ckpt_written_now(trainer):
            self.save(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_saved_step = trainer.global_step  # a resumed step is on disk already: never written again
        if self._minutes is not None:
            self._minutes.start(trainer)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self.background:
            self._writer = install_background_writer(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._writer is not None:
            uninstall_background_writer(trainer)
            self._writer = None

    def ensure_saved(self, trainer: L.Trainer) -> Path:
        """The checkpoint of the current step, complete on disk: saved now unless this step was already."""
        if self.last_path is None or self._last_saved_step != trainer.global_step:
            self.save(trainer)
        if self._writer is not None:
            self._writer.wait()
        assert self.last_path is not None
        return self.last_path

    def save(self, trainer: L.Trainer) -> Path:
        """Save the trainer's full state (all ranks must call it); older files are pruned once it is
        complete (in the writer thread when written in the background)."""
        path = self.dirpath / f"step-{trainer.global_step:08d}.ckpt"
        writer = self._writer
        if writer is None:
            trainer.save_checkpoint(path, weights_only=False)
            if trainer.is_global_zero:
                self._prune(trainer.strategy.remove_checkpoint)
        else:  # only rank 0 writes, so only rank 0 runs the pruning
            with writer.in_background(then=lambda: self._prune(writer.checkpoint_io.remove_checkpoint)):
                trainer.save_checkpoint(path, weights_only=False)
        self._last_saved_step = trainer.global_step
        self.last_path = path
        if self._minutes is not None:
            self._minutes.saved(trainer)
        return path

    def _prune(self, remove: Callable[[Path], None]) -> None:
        for old in periodic_checkpoints(self.dirpath)[: -self.keep]:
            remove(old)


def epoch_ends_now(trainer: L.Trainer) -> bool:
    """Whether the batch that just ran is the epoch's last. A checkpoint taken there, before the
    epoch-end validation and hooks, does not resume exactly (Lightning skips the pending epoch end),
    so the epoch-end checkpoint that follows takes its place."""
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


def _last_ckpt_written_now(trainer: L.Trainer) -> bool:
    """Whether a ``ModelCheckpoint(save_last=True)`` has just saved this same epoch-end state (it runs
    before this callback in ``on_train_epoch_end``): then ``last.ckpt`` is the epoch-end checkpoint and
    a second file with the same content would only cost time."""
    return any(
        isinstance(cb, ModelCheckpoint)
        and saved_this_epoch_end(cb, trainer)
        and Path(cb.last_model_path).is_file()
        for cb in trainer.checkpoint_callbacks
    )


def periodic_checkpoints(folder: Path) -> list[Path]:
    """The ``step-N.ckpt`` files in ``folder``, oldest written first (files of an earlier, overwritten
    run in the same folder go first)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _STEP_FILE.match(p.name)]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))
