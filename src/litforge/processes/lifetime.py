"""Helper processes that end with the process that started them.

``kill -9`` of ``litforge tune --workers K`` or ``litforge serve --workers K`` cannot run any clean-up,
and their extra processes used to live on: tune workers training trials nobody asked for, server
processes still holding the port. ``exit_when_gone(main_pid)`` in a helper ends it within a second of
the main process's death (a tune worker's running trial is then retried by the next run);
``forked_children_exit_with_this_process()`` does it for every process forked later.
"""

from __future__ import annotations

import os
import threading
import time
from functools import partial

_forks_watched_by: set[int] = set()


def exit_when_gone(pid: int | None = None, poll_s: float = 1.0) -> None:
    """Start a daemon thread that ends this process (exit code 1) once process ``pid`` (default: the
    parent) is gone. Tune workers pass the main process: their own parent is a forkserver."""
    watched = os.getppid() if pid is None else pid

    def watch() -> None:
        while _alive(watched):
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="litforge-exit-when-gone", daemon=True).start()


def forked_children_exit_with_this_process() -> None:
    """Every process forked from this one from now on (``os.fork``, multiprocessing's fork) ends within a
    second of this process's death. Spawned processes (fork + exec) are not covered: they call
    ``exit_when_gone`` themselves."""
    pid = os.getpid()
    if pid not in _forks_watched_by:  # once per process: the hook cannot be removed
        _forks_watched_by.add(pid)
        os.register_at_fork(after_in_child=partial(exit_when_gone, pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
