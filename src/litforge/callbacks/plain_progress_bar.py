"""Line-by-line progress for logs that are not a terminal (CI, job schedulers, ``| tee``)."""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar


class PlainProgressBar(ProgressBar):
    """Prints one line per finished epoch (and per validate/test/predict run) with the logged metrics."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._started = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, text: str) -> None:
        if self._enabled and self.trainer.is_global_zero:
            print(text, file=sys.stdout, flush=True)

    def _metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        # Epoch means (e.g. train_loss_epoch) too: models keep per-step values off the progress bar,
        # where Lightning would turn them into Python numbers (a host sync) after every batch.
        # Every logged value, not only the progress-bar ones (a model that logs val_loss without
        # prog_bar=True got an empty line), minus per-step values and names that also have an _epoch mean.
        logged = trainer.callback_metrics
        epoch_values = {
            k: float(v)
            for k, v in logged.items()
            if not k.endswith("_step")
            and f"{k}_epoch" not in logged
            and getattr(v, "numel", lambda: 1)() == 1
        }
        metrics = {**epoch_values, **self.get_metrics(trainer, pl_module)}
        metrics.pop("v_num", None)
        return " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(metrics.items())
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()  # a run resumed mid-epoch gets no on_train_epoch_start for it

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        limit = "" if trainer.max_epochs in (None, -1) else f"/{trainer.max_epochs}"
        seconds = time.perf_counter() - self._started
        self._print(
            f"epoch {trainer.current_epoch + 1}{limit} ({seconds:.2f}s) {self._metrics(trainer, pl_module)}"
        )

    def _on_loop_end(self, trainer: L.Trainer, name: str) -> None:
        if not trainer.sanity_checking:
            metrics = " ".join(f"{k}={float(v):.4g}" for k, v in sorted(trainer.callback_metrics.items()))
            self._print(f"{name} done {metrics}".rstrip())

    # The "validate done ..." / "test done ..." line is the results in a log: Lightning's table of them would
    # say the same again, drawn in box characters.
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "validate" and self._enabled:
            trainer.validate_loop.verbose = False

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled:
            trainer.test_loop.verbose = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._on_loop_end(trainer, "validate")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._on_loop_end(trainer, "test")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print(
            f"predict done ({trainer.num_predict_batches[0] if trainer.num_predict_batches else 0} batches)"
        )

    def state_dict(self) -> dict[str, Any]:
        return {}
