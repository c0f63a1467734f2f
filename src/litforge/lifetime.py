"""Helper processes that end with the process that started them.

``kill -9`` of ``litforge tune --workers K`` cannot run any clean-up, and its extra worker processes
used to live on, training trials nobody asked for. ``exit_when_gone(main_pid)`` in a worker ends it
within a second of the main process's death (its running trial is then retried by the next run).
"""

from __future__ import annotations

import os
import threading
import time


def exit_when_gone(pid: int | None = None, poll_s: float = 1.0) -> None:
    """Start a daemon thread that ends this process (exit code 1) once process ``pid`` (default: the
    parent) is gone. Tune workers pass the main process: their own parent is a forkserver."""
    watched = os.getppid() if pid is None else pid

    def watch() -> None:
        while _alive(watched):
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="litforge-exit-when-gone", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
