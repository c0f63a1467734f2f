"""How ``litforge tune --workers K`` starts its K-1 extra local worker processes.

A fresh Python process needs ~5 s to import torch, Lightning and Optuna, and the workers start their
first trials together, so with ``spawn`` the first worker sat idle for that long. A forkserver imports
them once, in the background, while the main process is still validating the search; each worker is then
forked from it, ready within a fraction of a second. Where there is no forkserver (Windows), ``spawn``.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

# What every worker needs before its first trial; imported once by the forkserver, in this order.
PRELOAD = [
    "torch",
    "lightning",
    "optuna",
    "litforge.cli.lightning_cli",
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
