"""The resilience callbacks litforge adds to every ``fit`` (see ``LitforgeCLI._default_callbacks``).

litforge fit --run my-run --resume auto --checkpoint_every_n_steps 200
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback

from litforge.resilience.callback_metrics import CallbackMetricsState
from litforge.resilience.epoch_aggregates import EpochAggregates
from litforge.resilience.epoch_length import SameEpochLength
from litforge.resilience.exception_checkpoint import ExceptionCheckpoint
from litforge.resilience.finite_loss import FiniteLossGuard
from litforge.resilience.loader_state import RestoreLoaderState
from litforge.resilience.metric_states import MetricStates
from litforge.resilience.periodic_checkpoint import DEFAULT_EVERY_N_STEPS, PeriodicCheckpoint
from litforge.resilience.preemption import PreemptionCheckpoint
from litforge.resilience.resumable_loader import ResumableTrainLoader
from litforge.resilience.rng_state import RNGState
from litforge.resilience.schedule_horizon import ScheduleHorizon
from litforge.resilience.stop_request import StopRequest


def resilience_callbacks(
    checkpoints: Path,
    every_n_train_steps: int = DEFAULT_EVERY_N_STEPS,
    checkpointing: bool = True,
    every_n_minutes: float | None = None,
    resumable: bool = True,
) -> list[Callback]:
    """The epoch-length check of mid-epoch resumes, the LR-schedule length check of resumes, RNG state, epoch aggregates, the module's torchmetrics states, callback metrics, resumable train
    loaders, loader-state fix, stop request and finite-loss guard; with
    ``checkpointing`` also the periodic (every ``every_n_train_steps`` steps and/or ``every_n_minutes``,
    written in the background), preemption and on-exception checkpoints into ``checkpoints``.
    ``resumable=False`` (a search's trial, never resumed) leaves out the note on a loader that cannot resume."""
    callbacks: list[Callback] = [
        SameEpochLength(),  # first: a refused resume stops before the others start
        ScheduleHorizon(),
        RNGState(),
        EpochAggregates(),
        MetricStates(),
        CallbackMetricsState(),
        ResumableTrainLoader(note=resumable),
        RestoreLoaderState(),
        StopRequest(),
        FiniteLossGuard(checkpoints),
    ]
    if checkpointing:
        periodic = PeriodicCheckpoint(
            checkpoints, every_n_train_steps=every_n_train_steps, every_n_minutes=every_n_minutes
        )
        callbacks += [
            periodic,
            PreemptionCheckpoint(periodic),
            ExceptionCheckpoint(checkpoints),
        ]
    return callbacks
