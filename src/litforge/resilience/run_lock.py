"""One process at a time per run folder: a lock that a second ``fit`` of the same run is refused by.

litforge fit --run dup --resume auto &  litforge fit --run dup --resume auto   # the second exits 2 at once

Two fits of one run would both train and write the same checkpoints, ``metrics.csv`` and
``finished.json``, leaving a run that neither resumes nor reads right. ``RunLock`` takes an exclusive
``fcntl.flock`` on ``<run>/.lock`` and writes the holder's pid into it for the message. The operating
system drops the lock when the holder's process ends, also on ``kill -9``, so a stale lock never blocks.
A process forked while the lock is held (a DataLoader worker) closes its copy of the descriptor at once:
an flock belongs to the open file, and a worker outliving a killed fit by the seconds it takes to notice
kept it, refusing the ``--resume auto`` typed right after.
Only the process that owns the run takes it: the DDP ranks it starts (and the other ranks of a
``torchrun``/``srun`` job) find the lock taken by rank 0 and must not wait for it (``is_run_owner``).

    with RunLock(run_folder):      # or: lock = RunLock(run_folder).acquire() ... lock.release()
        ...train...
"""

from __future__ import annotations

import fcntl
import os
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO

from litforge.errors import UsageError

LOCK_FILE = ".lock"
# Set to a process's rank by torchrun (RANK), srun (SLURM_PROCID) and Lightning's DDP launcher (LOCAL_RANK).
_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK")


_HELD: weakref.WeakSet[RunLock] = weakref.WeakSet()  # the locks this process holds now


def _drop_in_forked_child() -> None:
    """In a child of ``os.fork`` (a DataLoader worker): close its copy of each held lock's file. The lock
    stays the parent's (an flock is released with the last descriptor, or by LOCK_UN, never by a close)."""
    for lock in list(_HELD):
        if lock._file is not None:
            lock._file.close()
            lock._file = None
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_in_forked_child)


class RunInUse(UsageError):
    """Another live process holds the run folder's lock (exit 2)."""


def is_run_owner() -> bool:
    """Whether this process owns its run: not a rank > 0 of a distributed job (those share rank 0's run)."""
    return all(os.environ.get(name, "0") == "0" for name in _RANK_VARIABLES)


class RunLock:
    """An exclusive lock on a run folder, held from ``acquire`` to ``release`` (or around a ``with``).

    Keep a reference while the run lasts: a ``RunLock`` dropped by the garbage collector closes its file,
    which unlocks (so a failed command never keeps a lock either).

    Args:
        run_path: the run folder (created if missing); the lock is its ``.lock`` file.
    """

    def __init__(self, run_path: str | Path) -> None:
        self.run_path = Path(run_path)
        self.path = self.run_path / LOCK_FILE
        self._file: IO[bytes] | None = None  # open while held; closing it (also by the GC) unlocks

    @property
    def held(self) -> bool:
        return self._file is not None

    def refuse_if_held(self) -> None:
        """Raise ``RunInUse`` when another process holds the lock now; creates nothing. A fit checks this
        before it reads the run folder (resume search), and takes the lock itself once training starts."""
        if self._file is not None or not self.path.is_file():
            return
        with self.path.open("rb") as file:
            self._lock_or_refuse(file)
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)

    def acquire(self) -> RunLock:
        """Take the lock at once, or raise ``RunInUse`` naming the process that holds it."""
        if self._file is not None:
            return self
        self.run_path.mkdir(parents=True, exist_ok=True)
        file = self.path.open("a+b")
        try:
            self._lock_or_refuse(file)
        except BaseException:
            file.close()
            raise
        file.truncate(0)
        file.write(f"{os.getpid()}\n".encode())
        file.flush()
        self._file = file
        _HELD.add(self)
        return self

    def _lock_or_refuse(self, file: IO[bytes]) -> None:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read(32).decode(errors="replace").strip()
            raise RunInUse(
                f"run {self.run_path} is in use by another process "
                f"({f'pid {holder}' if holder.isdigit() else 'its pid not written yet'}); two fits of one "
                "run would overwrite each other's checkpoints and metrics: wait for it to end, or stop it"
            ) from None

    def release(self) -> None:
        """Give the lock up (the ``.lock`` file stays: deleting it would let two processes lock two files)."""
        if self._file is None:
            return
        file, self._file = self._file, None
        _HELD.discard(self)
        with file:
            file.truncate(0)
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()
