"""One trial = one ``litforge fit`` with the trial's values set in its config; shared by both backends.

A trial trains through the engine exactly like ``litforge fit --config FILE <fit flags> --model.lr 0.003``,
into ``<out>/trials/<name>/`` (config.yaml, metrics.csv, checkpoints/), and its value is the best
``metric`` over its validation epochs.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import lightning as L
from lightning.pytorch.utilities.model_helpers import is_overridden

from litforge.callbacks.monitor_mode import closest_logged
from litforge.engine import runtime
from litforge.engine.api import run_command
from litforge.engine.failures import raised_at
from litforge.engine.run_dir import RunDir
from litforge.errors import UsageError
from litforge.resilience.preemption import Interrupted
from litforge.tune.fit_config import parsed_fit

TRIALS_EXPERIMENT = "trials"


class TrialFailed(Exception):
    """A trial raised (or its metric was NaN): recorded as FAIL with ``fail_reason``, the search goes on."""

    @classmethod
    def from_error(cls, error: BaseException) -> TrialFailed:
        """The error in one line of at most ~500 characters, with the user's own line where it raised
        (``RuntimeError: boom (at mymodel.py:37 in training_step)``)."""
        where = raised_at(error)
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:440]
        return cls(reason + (f" (at {where})" if where else ""))


class NonFiniteMetric(RuntimeError):
    """The monitored metric became NaN or infinite: the trial fails (FAIL), the search goes on."""


def validates(trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
    """Whether this fit runs a validation loop; without one, a search's metric is a training one (``train_loss``)
    and is read at the end of each training epoch."""
    return is_overridden("validation_step", pl_module) and trainer.limit_val_batches != 0


class AtEpochEnd(L.Callback):
    """Calls ``epoch_done`` once per training epoch that validated, after its last validation, or after
    every training epoch of a model without a validation loop (its metric is then a training one, e.g.
    ``train_loss``). With ``val_check_interval: 0.5`` an epoch validates twice and counts once, so the
    pruners' rungs and ``--grace-period`` stay in epochs."""

    def __init__(self) -> None:
        self._validated = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._validated or not validates(trainer, pl_module):
            self.epoch_done(trainer, pl_module)
        self._validated = False

    def epoch_done(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise NotImplementedError


class EachEpoch(AtEpochEnd):
    """Hands a backend's per-epoch report callback the metric once per epoch, for any model.

    Optuna's ``PyTorchLightningPruningCallback`` and Ray's ``TuneReportCheckpointCallback`` report at
    each ``on_validation_end``: never for a model without a validation loop, and twice per epoch (one
    report dropped as a duplicate step) with ``val_check_interval`` below 1. This calls the wrapped
    callback's ``on_validation_end`` once per epoch (see ``AtEpochEnd``).

    Args:
        report: the backend's callback, e.g. ``PyTorchLightningPruningCallback(trial, monitor="val_loss")``.
    """

    def __init__(self, report: L.Callback) -> None:
        super().__init__()
        self.report = report

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.report.on_fit_start(trainer, pl_module)

    def epoch_done(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.report.on_validation_end(trainer, pl_module)


class MetricTracker(AtEpochEnd):
    """Records ``metric`` once per epoch (see ``AtEpochEnd``) and stops the trial when it is not finite.

    Args:
        metric: the logged metric the search optimizes, e.g. ``val_loss``.
        maximize: whether larger is better (for ``best``).
    """

    def __init__(self, metric: str, maximize: bool) -> None:
        super().__init__()
        self.metric = metric
        self.maximize = maximize
        self.values: list[float] = []
        self._noted = False

    def epoch_done(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer)

    def on_sanity_check_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A metric missing after the sanity check's few validation batches, with a validation metric of the
        same stage close to it (``val_los`` beside ``val_loss``), gets a note before the first trial trains
        an epoch. Not a refusal: a model may log it only outside the sanity check (``if not
        self.trainer.sanity_checking``), so the first epoch's end decides."""
        logged = [str(key) for key in trainer.callback_metrics]
        close = closest_logged(self.metric, logged, cutoff=0.75)
        if self.metric not in logged and close and _stage(close) == _stage(self.metric) and not self._noted:
            self._noted = True
            print(
                f"litforge: note: the sanity check logged no '{self.metric}' (did you mean {close}?); the "
                "trial goes on, and the search stops after its first epoch if it is still missing",
                file=sys.stderr,
                flush=True,
            )

    def _not_logged(self, logged: list[str]) -> NoReturn:
        close = closest_logged(self.metric, logged)
        raise UsageError(
            f"metric '{self.metric}' is not logged by the model (it logs: {', '.join(sorted(logged)) or 'nothing'}"
            f"{f'; did you mean {close}?' if close else ''}); set the space file's metric: to one of those"
        )

    def _record(self, trainer: L.Trainer) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            self._not_logged([str(key) for key in trainer.callback_metrics])
        value = float(value)
        if not math.isfinite(value):
            raise NonFiniteMetric(f"{self.metric} is {value} at epoch {trainer.current_epoch}")
        self.values.append(value)

    @property
    def best(self) -> float | None:
        if not self.values:
            return None
        return max(self.values) if self.maximize else min(self.values)


def _stage(metric: str) -> str:
    """``val`` for ``val_loss`` and ``val/acc``: the word a metric's name starts with."""
    return re.split(r"[_/.]", metric)[0]


@dataclass(frozen=True)
class TrialResult:
    """What a finished trial reports back."""

    value: float
    epochs: int
    run: RunDir


@dataclass(frozen=True)
class TrialRunner:
    """Trains trials of one search.

    Args:
        fit_args: the user's fit arguments (``--config FILE``, fit flags, a fixed ``--seed_everything``).
        metric: the metric to optimize.
        maximize: whether larger is better.
        out: the search folder; trial ``N`` trains into ``<out>/trials/N/``.
    """

    fit_args: tuple[str, ...]
    metric: str
    maximize: bool
    out: Path

    def run_dir(self, name: str) -> RunDir:
        return RunDir(self.out, TRIALS_EXPERIMENT, name)

    def config(self, name: str, values: dict[str, Any]) -> Any:
        """The typed fit config of one trial: the search's fit config with the trial's values."""
        return parsed_fit(self.fit_args).with_values(
            {
                **values,
                "trainer.default_root_dir": str(self.out),
                "experiment": TRIALS_EXPERIMENT,
                "run": name,
                "trainer.enable_progress_bar": False,
                "trainer.enable_model_summary": False,
                # A trial whose worker dies is retried from scratch under a new number, so mid-epoch
                # checkpoints would never be resumed from: only last.ckpt / best.ckpt at epoch ends.
                "checkpoint_every_n_steps": 0,
                "checkpoint_every_n_minutes": None,
                # best.ckpt by the search's metric: the one the kept trials are ranked by
                "monitor": self.metric,
                "monitor_mode": "max" if self.maximize else "min",
            }
        )

    @staticmethod
    def quiet() -> None:
        """Keep Lightning's per-run banners out of a search's output (one line per trial is printed)."""
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")

    def train(self, name: str, values: dict[str, Any], callbacks: list[Any] | None = None) -> TrialResult:
        """Train one trial; pruning callbacks raise their own exception, a NaN metric ``NonFiniteMetric``."""
        runtime.install()  # a no-op in the litforge process; a worker process's first trial installs it
        self.quiet()
        tracker = MetricTracker(self.metric, self.maximize)
        try:
            run_command(self.config(name, values), extra_callbacks=[tracker, *(callbacks or [])], quiet=True)
        except SystemExit as stop:  # Lightning turns Ctrl-C into sys.exit(1) after a graceful shutdown
            raise KeyboardInterrupt from stop
        except Interrupted as stop:  # litforge's Ctrl-C: the trial saved and stopped; the search stops too
            raise KeyboardInterrupt from stop
        if tracker.best is None:
            raise RuntimeError("the trial ran no validation epoch (check limit_val_batches / max_epochs)")
        return TrialResult(tracker.best, len(tracker.values), self.run_dir(name))
