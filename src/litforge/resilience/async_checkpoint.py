"""Periodic checkpoints written in the background: the state is copied to host memory (pinned, when it lives
on a GPU) and a writer thread saves the copy through the trainer's own ``CheckpointIO``.

litforge fit --run my-run --resume auto     # litforge's periodic checkpoints are written this way

The copy is what training waits for: on a GPU, copies queued on the training stream into reused pinned
buffers (no host sync; the writer waits for them with a CUDA event), on a CPU a memcpy. The write itself
(``AtomicCheckpointIO``: temporary file, fsync, rename, seal) runs while training continues, so every
promise of a synchronous save holds: a reader (or a resume after ``kill -9``) sees the previous complete
file or the new complete one. One write is in flight at a time: the next save, any other save, load or
removal through the trainer waits for it first, so files appear in the order they were taken.
"""

from __future__ import annotations

import copy
import itertools
import logging
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import CheckpointIO

from litforge._compat.torch import tree_map
from litforge.resilience.checkpoint_types import refuse_unloadable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SaveTiming:
    """One background save: seconds training waited (earlier write, state copy) and seconds of writing."""

    blocked_s: float
    background_s: float


class HostSnapshot:
    """Copies a checkpoint's tensors into host buffers that are reused from one save to the next.

    GPU tensors go into pinned buffers with non-blocking copies queued on the current stream, so the
    training that follows cannot change them before they are copied and the host does not wait; ``take``
    returns the CUDA events to wait on before reading the copy. Everything else is deep-copied, so the
    snapshot shares nothing mutable with the training state. Tensors that appear several times (tied
    weights) are copied once.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[int, torch.Size, torch.dtype, bool], torch.Tensor] = {}

    def take(self, checkpoint: Any) -> tuple[Any, list[torch.cuda.Event]]:
        """A copy of ``checkpoint`` on the host, and the events that mark its GPU copies as complete.
        Buffers of the previous ``take`` are overwritten: its copy must no longer be in use."""
        copies: dict[tuple[Any, ...], torch.Tensor] = {}
        devices: set[torch.device] = set()
        position = itertools.count()

        def snapshot(value: Any) -> Any:
            if not isinstance(value, torch.Tensor):
                return copy.deepcopy(value)
            key = _identity(value)
            if key not in copies:
                copies[key] = self._copy(value.detach(), next(position), devices)
            return copies[key]

        snapshot_of = tree_map(snapshot, checkpoint)
        events = []
        for device in devices:
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(device))
            events.append(event)
        return snapshot_of, events

    def _copy(self, tensor: torch.Tensor, position: int, devices: set[torch.device]) -> torch.Tensor:
        if type(tensor) is not torch.Tensor or tensor.layout != torch.strided:  # subclasses, sparse
            return tensor.clone()
        pinned = tensor.device.type == "cuda"
        key = (position, tensor.shape, tensor.dtype, pinned)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.stride() != tensor.stride():
            buffer = torch.empty_like(tensor, device="cpu", pin_memory=pinned)
            self._buffers[key] = buffer
        buffer.copy_(tensor, non_blocking=pinned)
        if pinned:
            devices.add(tensor.device)
        return buffer

    def clear(self) -> None:
        self._buffers.clear()


def _identity(tensor: torch.Tensor) -> tuple[Any, ...]:
    """Equal for two tensor objects that show the same memory the same way (a tied weight twice)."""
    return (
        tensor.device,
        tensor.untyped_storage().data_ptr(),
        tensor.storage_offset(),
        tuple(tensor.shape),
        tensor.stride(),
        tensor.dtype,
    )


class BackgroundCheckpointIO(CheckpointIO):
    """Wraps a ``CheckpointIO``: a save made inside ``in_background()`` is snapshotted to host memory and
    written by a worker thread through the wrapped IO; every other call waits for that write first.

    An error of a background write is raised by the next call that waits (the next save, a load, the
    end of training). ``timings`` lists the completed background saves.

    Args:
        checkpoint_io: the IO that writes the files (litforge's ``AtomicCheckpointIO``).
    """

    def __init__(self, checkpoint_io: CheckpointIO) -> None:
        self.checkpoint_io = checkpoint_io
        self.timings: list[SaveTiming] = []
        self._snapshot = HostSnapshot()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[float] | None = None
        self._pending_blocked_s = 0.0
        self._then: Callable[[], None] | None = None  # set inside ``in_background``

    @contextmanager
    def in_background(self, then: Callable[[], None] = lambda: None) -> Iterator[None]:
        """The save made inside (e.g. ``trainer.save_checkpoint``) is written in the background; ``then``
        runs in the writer thread once the file is complete (e.g. to delete older checkpoints). The time
        spent inside is what the save cost training (``SaveTiming.blocked_s``)."""
        start, submitted = time.perf_counter(), self._pending
        self._then = then
        try:
            yield
        finally:
            self._then = None
            if self._pending is not None and self._pending is not submitted:
                self._pending_blocked_s = time.perf_counter() - start

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        self.wait()
        then = self._then
        if then is None:
            self.checkpoint_io.save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        refuse_unloadable(checkpoint)  # here, not in the writer thread: the fit stops at this save
        snapshot, events = self._snapshot.take(checkpoint)
        if isinstance(checked := getattr(self.checkpoint_io, "checked", None), set):
            checked.add(id(snapshot))  # the writer thread need not scan it again
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="litforge-checkpoint")
        self._pending = self._executor.submit(self._write, snapshot, events, path, storage_options, then)

    def _write(
        self,
        snapshot: dict[str, Any],
        events: list[torch.cuda.Event],
        path: str | Path,
        storage_options: Any,
        then: Callable[[], None],
    ) -> float:
        start = time.perf_counter()
        for event in events:
            event.synchronize()
        self.checkpoint_io.save_checkpoint(snapshot, path, storage_options=storage_options)
        then()
        return time.perf_counter() - start

    def wait(self) -> None:
        """Block until the write in flight (if any) is complete; raise its error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.timings.append(SaveTiming(self._pending_blocked_s, pending.result()))

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        self.wait()
        return self.checkpoint_io.load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def remove_checkpoint(self, path: str | Path) -> None:
        self.wait()
        self.checkpoint_io.remove_checkpoint(path)

    def teardown(self) -> None:
        """Finish the write in flight and stop the writer thread. A failed write raises, unless training
        is already failing with another error (then it is logged: that first error is the one to see)."""
        failing = sys.exc_info()[1]  # Lightning tears down inside its ``except`` when training fails
        try:
            self.wait()
        except Exception:
            if failing is None:
                raise
            log.exception("a background checkpoint write failed as well")
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            self._snapshot.clear()
            self.checkpoint_io.teardown()


def install_background_writer(trainer: L.Trainer) -> BackgroundCheckpointIO | None:
    """Put a ``BackgroundCheckpointIO`` around the trainer's ``AtomicCheckpointIO`` (idempotent) and return
    it; ``None`` where saving in the background would break a promise: another ``CheckpointIO`` (it may
    not be thread-safe, or already asynchronous), or a strategy that writes its own files (FSDP,
    DeepSpeed: sharded, every rank writing)."""
    from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

    from litforge.resilience.atomic_checkpoint_io import AtomicCheckpointIO

    strategy = trainer.strategy
    io = strategy.checkpoint_io
    if isinstance(io, BackgroundCheckpointIO):
        return io
    if type(strategy) not in (SingleDeviceStrategy, DDPStrategy) or not isinstance(io, AtomicCheckpointIO):
        return None
    strategy.checkpoint_io = writer = BackgroundCheckpointIO(io)
    return writer


def background_save_timings(trainer: L.Trainer) -> list[SaveTiming]:
    """The trainer's completed background saves (none when it writes synchronously)."""
    io = trainer.strategy.checkpoint_io
    return list(io.timings) if isinstance(io, BackgroundCheckpointIO) else []


def wait_for_checkpoint_writes(trainer: L.Trainer) -> None:
    """Block until the trainer's checkpoint written in the background (if any) is complete on disk."""
    io = trainer.strategy.checkpoint_io
    if isinstance(io, BackgroundCheckpointIO):
        io.wait()


def uninstall_background_writer(trainer: L.Trainer) -> None:
    """Wait for the write in flight and give the trainer its own ``CheckpointIO`` back."""
    io = trainer.strategy.checkpoint_io
    if isinstance(io, BackgroundCheckpointIO):
        io.wait()
        trainer.strategy.checkpoint_io = io.checkpoint_io
