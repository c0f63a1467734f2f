"""Preemption notices (SIGTERM, SIGUSR1) -> a checkpoint at the next step boundary and a clean exit 75;
Ctrl+C (SIGINT) the same with exit 130, and a second Ctrl+C stops at once.

litforge fit --run my-run --resume auto     # on SIGTERM: saves, exits 75; the same command continues
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Checkpoint

from litforge._compat.lightning import cluster_environment, only_accumulated
from litforge.errors import LitforgeError
from litforge.resilience.after_batch_end import after_module_batch_end
from litforge.resilience.periodic_checkpoint import PeriodicCheckpoint, epoch_ends_now

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: a temporary failure; run the same command again to continue
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl+C
log = logging.getLogger(__name__)


class Preempted(LitforgeError):
    """Training stopped on a preemption signal after saving a checkpoint (exit 75)."""

    exit_code = EXIT_PREEMPTED
    kind = "stopped"  # printed as "litforge: stopped: ...": the run asked to stop, nothing failed


class Interrupted(Preempted):
    """Training stopped on Ctrl+C after saving a checkpoint (exit 130)."""

    exit_code = EXIT_INTERRUPTED


class PreemptionCheckpoint(Checkpoint):
    """On SIGTERM or SIGUSR1, finish the current optimizer step (a whole accumulation window), save a
    periodic checkpoint and raise ``Preempted``.

    Lightning's own SIGTERM handler stops at the next batch without saving; this one replaces it for
    the training loop. In distributed runs the ranks agree on the step (any rank's signal stops all),
    so they save the same checkpoint. Under SLURM with Lightning's ``SLURMEnvironment(auto_requeue=True)``
    the job is requeued (``scontrol requeue``) after the save, as Lightning does.

    Args:
        periodic: the ``PeriodicCheckpoint`` whose file format and folder the preemption save uses.
        signals: the signals that announce a preemption.
    """

    def __init__(
        self,
        periodic: PeriodicCheckpoint,
        signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT),
    ) -> None:
        self.periodic = periodic
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._pending: Preempted | None = None  # saved at an epoch's end, raised as the next one starts

    # Installed at train start: Lightning registers its own handlers just before, and ours must win.
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signals:
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # e.g. SIGINT of a background job (`litforge fit ... &`): stays ignored
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            if self.received == signal.SIGINT:
                raise KeyboardInterrupt  # the second Ctrl+C: stop now (Lightning's shutdown path)
            os.write(2, b"\nlitforge: saving a checkpoint at the end of this step (Ctrl+C again stops now)\n")
        self.received = signum

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        # at an epoch's last batch, stop at the epoch end instead; in the middle of an accumulation window
        # (accumulate_grad_batches), at the batch whose optimizer step ends it: the partial gradients are
        # not saved, so a checkpoint before that step would resume with some of them lost
        if not epoch_ends_now(trainer) and not only_accumulated(trainer):
            # after the module's own batch-end hook: what it does (an EMA update) belongs to this step
            after_module_batch_end(pl_module, lambda: self._stop(trainer, self._saved_if_signalled(trainer)))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # saved now, stopped as the next epoch starts: Lightning writes the epoch's own metrics
        # (self.log(on_epoch=True)) to the loggers after these hooks, and a resume does not run it again
        self._pending = self._saved_if_signalled(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop(trainer, self._pending)

    def _saved_if_signalled(self, trainer: L.Trainer) -> Preempted | None:
        """On a signal (any rank's): the checkpoint of this step saved, and the stop that says so."""
        stop = self.received is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return None
        path = self.periodic.ensure_saved(trainer)
        kind = Interrupted if self.received == signal.SIGINT else Preempted
        return kind(
            f"{self._why()}: saved {path} at step {trainer.global_step}; run the same command with "
            "--resume auto to continue"
        )

    def _stop(self, trainer: L.Trainer, stopped: Preempted | None) -> None:
        """Raise ``stopped`` (if any), after asking SLURM's auto-requeue for the job again: as the run stops,
        not when an epoch's end only saved (the last epoch's then finishes the run: nothing to requeue)."""
        if stopped is None:
            return
        if _slurm_auto_requeue(trainer) and trainer.is_global_zero:
            _requeue_slurm_job()
        raise stopped

    def _why(self) -> str:
        if self.received == signal.SIGINT:
            return "interrupted by Ctrl+C"
        name = signal.Signals(self.received).name if self.received is not None else "a preemption signal"
        return f"preempted by {name}"

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None and trainer.is_global_zero:  # the signal came as the last epoch ended
            print(
                f"litforge: note: {self._why()} as training ended: the run finished",
                file=sys.stderr,
                flush=True,
            )
        self._pending = None
        self._restore_handlers()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()


def _slurm_auto_requeue(trainer: L.Trainer) -> bool:
    environment = cluster_environment(trainer)
    return isinstance(environment, SLURMEnvironment) and environment.auto_requeue


def _requeue_slurm_job() -> None:
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ["SLURM_JOB_ID"]
    result = subprocess.run(["scontrol", "requeue", job], check=False)
    if result.returncode == 0:
        log.info("requeued SLURM job %s", job)
    else:
        log.warning("scontrol requeue %s failed with exit code %s", job, result.returncode)
