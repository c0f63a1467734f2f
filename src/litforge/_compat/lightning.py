"""Lightning's private names that litforge's callbacks, loggers and resilience pieces use, one function each.

Each is checked by ``tests/test_compat.py``: when a Lightning upgrade renames one, that test names it,
instead of a run crashing at some epoch end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from lightning.fabric.utilities.types import _Stateful
from lightning.pytorch.callbacks import ModelCheckpoint, StochasticWeightAveraging
from lightning.pytorch.core.module import _jit_is_scripting
from lightning.pytorch.loggers import TensorBoardLogger

# -- the fit loop's data -------------------------------------------------------------------------------------
Stateful = _Stateful  # the protocol Lightning checks to save and restore a loader's state
set_sampler_epoch = _set_sampler_epoch  # a loader's sampler.set_epoch, as Lightning calls it per epoch
# -- tracing: the context in which LightningModule.to_torchscript traces (trainer-only properties stay quiet)
jit_tracing = _jit_is_scripting


def fit_loop_data(trainer: L.Trainer) -> tuple[Any, Any]:
    """The fit loop's combined train loader and its data fetcher (``None`` before the loop set them up)."""
    fit_loop = trainer.fit_loop
    return fit_loop._combined_loader, fit_loop._data_fetcher


def drop_pending_loader_states(trainer: L.Trainer) -> None:
    """Forget the loader states Lightning would restore at its next iterator (litforge restored them)."""
    trainer.fit_loop._combined_loader_states_to_load = []


def validation_follows(trainer: L.Trainer) -> bool:
    """Whether Lightning runs a validation right after the training batch that just ran (asked in
    ``on_train_batch_end``): its own rule (``val_check_interval``, ``check_val_every_n_epoch``, time-based
    intervals, a stop request)."""
    fit_loop = trainer.fit_loop
    return bool(fit_loop.epoch_loop._should_check_val_fx(fit_loop._data_fetcher))


def only_accumulated(trainer: L.Trainer) -> bool:
    """Whether the training batch that just ran only added to the gradients (``accumulate_grad_batches``):
    no optimizer step ended with it, so the state after it is not a step boundary (asked in
    ``on_train_batch_end``)."""
    return bool(trainer.fit_loop.epoch_loop._should_accumulate())


# -- the running epoch aggregates of self.log(..., on_epoch=True) -------------------------------------------
def epoch_aggregates(trainer: L.Trainer) -> dict[str, Any]:
    """The training loop's running aggregates of tensors logged with ``on_epoch=True``: ``{key: metric}``,
    each with ``value`` (a sum, max or min so far) and, for a mean, ``cumulated_batch_size``."""
    results = trainer.fit_loop.epoch_loop._results
    return {
        key: metric
        for key, metric in results.items()
        if getattr(metric, "is_tensor", False) and metric.meta.on_epoch
    }


def aggregate_state(metric: Any) -> dict[str, Any]:
    """One aggregate's state as plain tensors: its reduction, value and (a mean's) summed batch sizes."""
    meta = metric.meta
    reduction = "mean" if meta.is_mean_reduction else "max" if meta.is_max_reduction else "min"
    reduction = "sum" if meta.is_sum_reduction else reduction
    count = metric.cumulated_batch_size.detach().cpu() if reduction == "mean" else None
    return {"reduction": reduction, "value": metric.value.detach().cpu(), "count": count}


def add_to_aggregate(metric: Any, state: dict[str, Any]) -> None:
    """Fold ``state`` (an ``aggregate_state``) into ``metric``: what the batches before a resume added."""
    saved = state["value"].to(metric.value.device, metric.value.dtype)
    if state["reduction"] in ("mean", "sum"):
        metric.value = metric.value + saved  # a + b == b + a in floating point: the same sum as unbroken
    else:
        metric.value = (torch.maximum if state["reduction"] == "max" else torch.minimum)(metric.value, saved)
    if state["count"] is not None:
        metric.cumulated_batch_size = metric.cumulated_batch_size + state["count"].to(metric.value.device)
    metric._computed = None  # torchmetrics caches compute() until the next update


def metrics_reset_after_evaluation(trainer: L.Trainer) -> list[Any]:
    """The ``torchmetrics.Metric`` objects logged (``self.log("val_mae", self.val_mae)``) in the validation
    running now, which Lightning resets once its ``on_validation_end`` hooks have run; ``[]`` outside one."""
    if trainer.training or (results := trainer._results) is None:
        return []
    return [metric.value for metric in results.values() if not getattr(metric, "is_tensor", True)]


# -- the epoch-end ReduceLROnPlateau step Lightning skips after a resume ------------------------------------
def plateau_step_skipped(trainer: L.Trainer) -> bool:
    """Whether Lightning will skip this epoch's end-of-epoch ``ReduceLROnPlateau`` step (asked in
    ``on_train_epoch_end``): it does while the fit loop is restarting, i.e. in the epoch a run resumed in,
    since the monitored metric was not in the checkpoint."""
    return bool(trainer.fit_loop.restarting)


def let_plateau_step(trainer: L.Trainer) -> None:
    """Make Lightning take this epoch's end-of-epoch plateau step (its own code, with its own checks)."""
    trainer.fit_loop._restarting = False


def in_epoch_end(trainer: L.Trainer) -> bool:
    """Whether the fit loop is inside an epoch's end (its hooks ran or run; its plateau step has not)."""
    progress = trainer.fit_loop.epoch_progress.current
    return progress.processed > progress.completed


def take_plateau_steps(trainer: L.Trainer, epoch: int) -> None:
    """The end-of-epoch ``ReduceLROnPlateau`` steps of ``epoch``, as Lightning's fit loop takes them
    (``_TrainingEpochLoop._update_learning_rates``): frequency, monitor from ``callback_metrics``, the
    module's ``lr_scheduler_step``, the scheduler progress; a monitor that is missing skips that scheduler."""
    from lightning.pytorch.trainer import call

    loop = trainer.fit_loop.epoch_loop
    if not trainer.lightning_module.automatic_optimization:
        return
    for config in trainer.lr_scheduler_configs:
        if not config.reduce_on_plateau or config.interval != "epoch" or (epoch + 1) % config.frequency:
            continue
        value = trainer.callback_metrics.get(config.monitor)
        if value is None:
            continue
        loop.scheduler_progress.increment_ready()
        call._call_lightning_module_hook(trainer, "lr_scheduler_step", config.scheduler, value)
        loop.scheduler_progress.increment_completed()


# -- ModelCheckpoint's bookkeeping ---------------------------------------------------------------------------
def saved_this_epoch_end(callback: ModelCheckpoint, trainer: L.Trainer) -> bool:
    """Whether an epoch-end ``ModelCheckpoint(save_last=True)`` has just saved the trainer's current step."""
    return (
        bool(callback.save_last)
        and callback._every_n_train_steps == 0
        and callback._last_global_step_saved == trainer.global_step
        and callback._should_save_on_train_epoch_end(trainer)
    )


def swa_copied_its_average(callback: StochasticWeightAveraging, trainer: L.Trainer) -> bool:
    """Whether this ``StochasticWeightAveraging`` copied its average into the module in its ``on_train_end``
    (Lightning's own test there: the last SWA epoch reached, or an endless run; and an average taken)."""
    reached = trainer.current_epoch - 1 >= callback.swa_end or callback._max_epochs == -1
    return reached and callback._average_model is not None


# -- the strategy and the cluster environment ---------------------------------------------------------------
def cluster_environment(trainer: L.Trainer) -> Any:
    """The trainer's cluster environment (``SLURMEnvironment``, ``TorchElasticEnvironment``, ...)."""
    return getattr(trainer._accelerator_connector, "cluster_environment", None)


def process_group_backend(strategy: Any) -> Callable[[], str] | None:
    """The strategy's function naming its process-group backend (``nccl``/``gloo``), if it has one."""
    return getattr(strategy, "_get_process_group_backend", None)


def process_group_timeout(strategy: Any) -> timedelta | None:
    """The collective timeout the strategy was configured with, if any."""
    return getattr(strategy, "_timeout", None)


def logged_step(trainer: L.Trainer) -> int:
    """The step Lightning logs metrics at: batches that stepped the optimizers, once per batch however many
    optimizers stepped (``global_step`` counts each optimizer's step: twice per batch for a GAN)."""
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped)


# -- loggers -------------------------------------------------------------------------------------------------
def logger_experiment(logger: Any) -> Any:
    """The logger's writer if it was created, without creating it (``logger.experiment`` would)."""
    return logger._experiment


def reopen_tensorboard_at(logger: TensorBoardLogger, step: int) -> None:
    """Close the logger's event writer; Lightning re-creates it at its next use with ``purge_step=step``
    (it passes the logger's keyword arguments to ``SummaryWriter``)."""
    if logger._experiment is not None:
        logger._experiment.close()
        logger._experiment = None
    logger._kwargs["purge_step"] = step


# -- timing a trainer method ---------------------------------------------------------------------------------
def time_calls(trainer: L.Trainer, method: str, record: Callable[[float], None]) -> Callable[[], None]:
    """Make every call of ``trainer.<method>`` report its seconds to ``record`` (an instance attribute
    shadows the class's method); returns the function that undoes it."""
    original = getattr(trainer, method)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            record(time.perf_counter() - start)

    setattr(trainer, method, timed)

    def undo() -> None:
        if method in vars(trainer):
            delattr(trainer, method)

    return undo
