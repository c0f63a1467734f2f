"""Make torchrun's ``--max-restarts`` work: a fresh key space in the rendezvous store per restart.

Since torch 2.5, torchrun's c10d rendezvous shares one TCP store between the agent and its workers and
keeps it across restarts (pytorch/pytorch#135712). The default process group writes its connection
addresses under the same keys on every attempt, so a restarted worker can read the *previous* attempt's
addresses and fail with "Gloo connectFullMesh failed ... Connection refused" (NCCL: a stale unique id).

``init_process_group_for_restart`` initialises the default process group itself, on the shared store
under a prefix that names the restart (``TORCHELASTIC_RESTART_COUNT``); Lightning sees an initialised
group and skips its own. It does nothing outside torchrun or when the agent does not share its store
(``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``, the other cure, which also covers elastic multi-node jobs
whose nodes can disagree on the restart count).
"""

from __future__ import annotations

import os
from datetime import timedelta

import lightning as L
import torch.distributed as dist

from litforge._compat.lightning import process_group_backend, process_group_timeout


def restart_store_prefix() -> str | None:
    """The store prefix for this torchrun attempt, or None when the workers do not share the agent's store."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    return f"litforge/restart_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/"


def init_process_group_for_restart(trainer: L.Trainer) -> bool:
    """Initialise the default process group on a per-restart store prefix; True when it did."""
    prefix = restart_store_prefix()
    backend_of = process_group_backend(trainer.strategy)
    if prefix is None or backend_of is None or not dist.is_available() or dist.is_initialized():
        return False
    if trainer.world_size < 2:
        return False
    timeout: timedelta = process_group_timeout(trainer.strategy) or timedelta(minutes=30)
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=timeout
    )
    dist.init_process_group(
        backend_of(),
        store=dist.PrefixStore(prefix, store),
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        timeout=timeout,
    )
    return True
