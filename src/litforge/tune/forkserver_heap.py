"""Imported last by ``litforge tune``'s worker forkserver (``worker_processes.PRELOAD``): freezes its heap.

The forkserver holds torch, Lightning and Optuna (~460k objects). Frozen, its own exit at the end of a
search no longer walks them (measured: the forkserver outlived ``litforge tune`` by 1.3-1.8 s, which a
caller reading the command's output waits for), and the workers forked from it start frozen too.
"""

from litforge.processes.heap import freeze_loaded_heap

freeze_loaded_heap(collect=False)  # the workers' start waits for the forkserver
