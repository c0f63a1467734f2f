"""Everything that makes a run resumable: atomic, checksummed checkpoint files (one reader:
``checkpoint_file``), periodic, preemption and exception checkpoints, RNG and loader state, resume
resolution, the run-folder lock, and the loggers' side of a resume (``metrics.csv``, TensorBoard).

litforge fit --run my-run --resume auto     # see docs/fault-tolerance.md
"""

from litforge.resilience.atomic_checkpoint_io import AtomicCheckpointIO
from litforge.resilience.checkpoint_checksum import CheckpointCorrupt, verify_checkpoint
from litforge.resilience.defaults import resilience_callbacks
from litforge.resilience.exception_checkpoint import ExceptionCheckpoint
from litforge.resilience.finite_loss import FiniteLossGuard, NonFiniteLoss
from litforge.resilience.loader_state import RestoreLoaderState
from litforge.resilience.periodic_checkpoint import DEFAULT_EVERY_N_STEPS, PeriodicCheckpoint
from litforge.resilience.preemption import (
    EXIT_INTERRUPTED,
    EXIT_PREEMPTED,
    Interrupted,
    Preempted,
    PreemptionCheckpoint,
)
from litforge.resilience.resumable_loader import ResumableTrainLoader
from litforge.resilience.rng_state import RNGState
from litforge.resilience.run_lock import RunInUse, RunLock, is_run_owner
from litforge.resilience.stop_request import StopRequest

__all__ = [
    "DEFAULT_EVERY_N_STEPS",
    "EXIT_INTERRUPTED",
    "EXIT_PREEMPTED",
    "AtomicCheckpointIO",
    "CheckpointCorrupt",
    "ExceptionCheckpoint",
    "FiniteLossGuard",
    "Interrupted",
    "NonFiniteLoss",
    "PeriodicCheckpoint",
    "Preempted",
    "PreemptionCheckpoint",
    "RNGState",
    "RestoreLoaderState",
    "ResumableTrainLoader",
    "RunInUse",
    "RunLock",
    "StopRequest",
    "is_run_owner",
    "resilience_callbacks",
    "verify_checkpoint",
]
