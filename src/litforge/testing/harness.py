"""Tiny trainers that run a module's own ``training_step`` and ``configure_optimizers`` on one real batch.

Running the real Lightning loop (instead of calling ``training_step`` by hand) keeps the checks generic:
``self.log``, every ``configure_optimizers`` return shape, schedulers, manual optimization and
precision plugins all behave as in ``litforge fit``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import lightning as L
import torch
from torch.nn.parameter import is_lazy
from torch.utils.data import DataLoader, Dataset

from litforge.callbacks.idle_layers_note import idle_in_training

_NOISY_LOGGERS = ("lightning.pytorch", "lightning.fabric", "torch.onnx", "onnxscript")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Lightning's and the ONNX exporter's info messages and warnings while a check runs."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=False):
            logger.setLevel(level)


def tiny_trainer(**overrides: Any) -> L.Trainer:
    """``tiny_trainer(max_epochs=2)``: a CPU Trainer that runs in seconds (1 epoch, 2 batches per loop, no
    logger, checkpoints, progress bar or model summary); keyword arguments override any setting."""
    settings: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "limit_train_batches": 2,
        "limit_val_batches": 2,
        "limit_test_batches": 2,
        "limit_predict_batches": 2,
        "num_sanity_val_steps": 0,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    settings.update(overrides)
    return L.Trainer(**settings)


class _Repeat(Dataset):
    """The same (already collated) batch, ``times`` times."""

    def __init__(self, batch: Any, times: int) -> None:
        self.batch, self.times = batch, times

    def __len__(self) -> int:
        return self.times

    def __getitem__(self, index: int) -> Any:
        return self.batch


def fit_on_batch(
    model: L.LightningModule,
    batch: Any,
    steps: int,
    callbacks: list[L.Callback] | None = None,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """Train ``model`` for ``steps`` training steps (batches: a manual ``training_step`` that steps two
    optimizers counts once), all on ``batch``, with no validation (so a scheduler that monitors a
    validation metric, e.g. ``ReduceLROnPlateau`` on ``val_loss``, is not stepped)."""
    loader = DataLoader(_Repeat(batch, steps), batch_size=None)  # batch_size=None: items are batches
    settings = {"max_steps": -1, "max_epochs": 1, "limit_train_batches": steps, "limit_val_batches": 0}
    settings |= trainer_kwargs
    trainer = tiny_trainer(callbacks=[*(callbacks or []), _MonitoredSchedulersWait()], **settings)
    trainer.fit(model, train_dataloaders=loader)
    return trainer


class _MonitoredSchedulersWait(L.Callback):
    """Schedulers stepped on a monitored metric skip their step when the metric is not logged (no validation
    here), as Lightning does with ``strict=False``, instead of failing the check."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for config in trainer.lr_scheduler_configs:
            if config.monitor:
                config.strict = False


def step_loss(output: Any) -> Any:
    """The loss in a ``training_step`` output: the tensor itself or the ``"loss"`` entry of a dict."""
    return output.get("loss") if isinstance(output, Mapping) else output


class StepRecorder:
    """Wraps ``model.training_step`` to record each step's loss value (and optionally vet its output).

    Args:
        model: the module; its ``training_step`` is replaced on the instance only.
        inspect: called with every raw ``training_step`` output before Lightning sees it.
        stop_below: stop training once a step's loss is below this value (or NaN), or at once when manual
            optimization returns no loss.
    """

    def __init__(
        self,
        model: L.LightningModule,
        inspect: Callable[[Any], None] | None = None,
        stop_below: float | None = None,
    ) -> None:
        self.losses: list[float] = []
        self.calls = 0
        self.error: Exception | None = None  # what training_step itself raised, if anything
        self.idle_in_training: list[str] = []  # see ``idle_in_training``, at the first step
        original = model.training_step

        @functools.wraps(original)  # keeps the signature Lightning inspects (batch_idx, dataloader_iter)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            try:
                output = original(*args, **kwargs)
            except Exception as error:
                self.error = error
                raise
            self.calls += 1
            if self.calls == 1:
                self.idle_in_training = idle_in_training(model)
            if inspect is not None:
                inspect(output)
            loss = step_loss(output)
            if isinstance(loss, torch.Tensor) and loss.numel() == 1:
                self.losses.append(float(loss.detach()))
                if stop_below is not None and not self.losses[-1] >= stop_below:  # reached, or NaN
                    model.trainer.should_stop = True
            elif stop_below is not None and not model.automatic_optimization:
                model.trainer.should_stop = True  # no loss to follow (manual optimization): no point going on
            # (``None`` from an automatically optimized step skips that batch, as Lightning allows: go on)
            return output

        model.training_step = recorded  # type: ignore[method-assign]


class GradientProbe(L.Callback):
    """Records, over one training step, which parameters got a gradient and which are in an optimizer.

    ``before`` holds the trainable parameters as training starts, after ``configure_model`` has run: a
    submodule compiled there is renamed (``net._orig_mod.0.weight``), a layer built there only exists then.
    ``after`` holds them once the step's batch ends, before any ``on_train_end`` (a
    ``StochasticWeightAveraging`` of the module's ``configure_callbacks`` copies its average back there).
    """

    def __init__(self) -> None:
        self.before: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}
        self.optimizer_steps = 0
        self.with_grad: set[str] = set()
        self.nonzero_grad: set[str] = set()
        self.nonfinite_grad: set[str] = set()
        self.in_optimizer: set[str] = set()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.before = trainable_parameters(pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # every parameter, a frozen one too: one frozen during the step is still compared
        self.after = {n: p.detach().clone() for n, p in pl_module.named_parameters() if not is_lazy(p)}

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.optimizer_steps == 0:  # an nn.LazyLinear's weight exists only after the first forward
            self.before = trainable_parameters(pl_module) | self.before
        self.optimizer_steps += 1
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        for name, param in pl_module.named_parameters():
            if id(param) in ids:
                self.in_optimizer.add(name)
            if param.grad is not None:
                self.with_grad.add(name)
                values = (
                    param.grad.coalesce().values() if param.grad.is_sparse else param.grad
                )  # Embedding(sparse=True)
                if bool(values.ne(0).any()):
                    self.nonzero_grad.add(name)
                if not bool(values.isfinite().all()):
                    self.nonfinite_grad.add(name)


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``name -> detached copy`` of every parameter that requires grad, less the lazy ones not yet built."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and not is_lazy(p)}
