"""How ``litforge tune --workers K`` starts its K-1 extra local worker processes.

A fresh Python process needs ~5 s to import torch, Lightning and Optuna, and the workers start their
first trials together, so with ``spawn`` the first worker sat idle for that long. A forkserver imports
them once, in the background, while the main process is still validating the search; each worker is then
forked from it, ready within a fraction of a second. Where there is no forkserver (Windows), ``spawn``.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.context import BaseContext
from typing import Any

# What every worker needs before its first trial; imported once by the forkserver, in this order.
PRELOAD = [
    "torch",
    "lightning",
    "optuna",
    "litforge.engine.lightning_cli",
    "litforge.tune.optuna_backend",
    "litforge.tune.forkserver_heap",  # last: freezes what the others loaded
]


def worker_context() -> BaseContext:
    """The multiprocessing context for extra workers: a preloading forkserver, else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def start_importing_in_background() -> None:
    """Start the forkserver now (it returns at once) so its imports overlap the main process's work."""
    if worker_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def watch_worker_starts(ready: Any, workers: list[Any], poll_s: float = 0.2) -> Callable[[], None]:
    """Break the start barrier ``ready`` as soon as one of the started ``workers`` exits.

    A worker that dies before the barrier (its storage unreachable, an import error) would otherwise keep
    the others waiting out the barrier's timeout (minutes) before they start without it. After the start
    the barrier is not used again, so breaking it when a worker ends normally changes nothing. Returns
    the function that ends the watch.
    """
    stop = threading.Event()

    def watch() -> None:
        sentinels = [worker.sentinel for worker in workers]  # readable once the process has exited
        while not stop.is_set():
            if wait(sentinels, timeout=poll_s):
                ready.abort()
                return

    thread = threading.Thread(target=watch, name="litforge-worker-start-watch", daemon=True)
    thread.start()

    def end() -> None:
        stop.set()
        thread.join()

    return end
