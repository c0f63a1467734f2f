"""``checkpoints/best.ckpt`` by a monitored metric whenever the model logs it, and ``checkpoints/last.ckpt``.

litforge fit                                  # best by val_loss (lowest) when logged, last always
litforge fit --monitor val_acc --monitor_mode max
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, StochasticWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn

from litforge._compat.lightning import swa_copied_its_average
from litforge.callbacks.monitor_mode import DEFAULT_MONITOR, closest_logged
from litforge.errors import UsageError


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` writing ``best.ckpt`` and ``last.ckpt`` into a run's ``checkpoints/``.

    A model that never logs the monitored metric (no validation loop, other metric names) gets
    ``last.ckpt`` only, with one line on stderr saying so, instead of Lightning's error. ``last.ckpt``
    always holds the state training ended in. Files are overwritten in place (no ``best-v1.ckpt``): a
    run folder holds one run.

    Args:
        dirpath: the run's ``checkpoints/`` folder.
        monitor: the metric that chooses ``best.ckpt``; ``None`` keeps ``last.ckpt`` only.
        mode: ``min`` or ``max``: whether a lower or a higher ``monitor`` is better.
        typed: ``monitor`` is the user's ``--monitor`` flag: not logged by the end of the first training
            epoch (a typo), the fit stops there (exit 2) rather than train on with no best.ckpt.
    """

    def __init__(
        self,
        dirpath: str | Path,
        monitor: str | None = DEFAULT_MONITOR,
        mode: str = "min",
        typed: bool = False,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1 if monitor else 0,
            save_last=True,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )
        self._last_only_step = -1
        self._said_unlogged = False
        self._validated = False  # a validation (not the sanity check) has run in this process
        self._typed = typed

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._best_only_if_logged(trainer, super().on_train_epoch_end, pl_module)
        self._refuse_or_say_if_unlogged(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validated = self._validated or not trainer.sanity_checking
        self._best_only_if_logged(trainer, super().on_validation_end, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """``last.ckpt`` is the run's final state, also when it stopped between two saves (``max_steps``
        in the middle of an epoch)."""
        averaged = _averaged_in_at_the_end(trainer)
        if averaged or _saved_step(self._last_path) != trainer.global_step:
            self._save_last(trainer)
        if averaged and trainer.is_global_zero:
            best = "; best.ckpt holds its best epoch's own weights" if self.best_model_path else ""
            print(
                f"litforge: note: {averaged} copied its averaged weights into the model as training ended: "
                f"checkpoints/last.ckpt holds them{best} (--ckpt_path last tests or exports the averaged ones)",
                file=sys.stderr,
                flush=True,
            )
        if self.monitor and not self.best_model_path and trainer.is_global_zero:
            # with the run's closing lines, also when a note said it after the first epoch
            why = "see the note above" if self._said_unlogged else self._logged_instead(trainer)
            print(
                f"litforge: the model logged no '{self.monitor}' ({why}), so the run has checkpoints/last.ckpt "
                "but no best.ckpt (--monitor NAME chooses the metric)",
                file=sys.stderr,
                flush=True,
            )

    @property
    def _last_path(self) -> Path:
        return Path(str(self.dirpath)) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"

    def _best_only_if_logged(self, trainer: L.Trainer, save: Any, pl_module: L.LightningModule) -> None:
        """Lightning's save when the monitored metric is logged; else ``last.ckpt`` alone (Lightning would
        raise, or skip ``last`` too since it saves it only beside a best)."""
        if self.monitor is None or self.monitor in trainer.callback_metrics:
            save(trainer, pl_module)
            return
        if _fitting(trainer) and self._last_only_step != trainer.global_step:
            self._save_last(trainer)

    def _refuse_or_say_if_unlogged(self, trainer: L.Trainer) -> None:
        """After the first training epoch (its validation and its epoch-level training metrics are logged by
        then: ``train_acc`` with ``on_epoch=True`` is not, at the validation's end), a monitor the model has
        not logged: a typed ``--monitor`` stops the fit (exit 2) with last.ckpt saved; litforge's default is
        a note, once. A metric of another stage than training waits for the first validation, which may
        come later (``check_val_every_n_epoch: 2``, a ``val_check_interval`` longer than an epoch)."""
        if self.monitor is None or self.monitor in trainer.callback_metrics or not _fitting(trainer):
            return
        if _stage(str(self.monitor)) != "train" and trainer.enable_validation and not self._validated:
            return
        if self._typed:
            if self._last_only_step != trainer.global_step:
                self._save_last(trainer)
            raise UsageError(
                f"--monitor {self.monitor}: the model logs no such metric ({self._logged_instead(trainer)}); the "
                "epoch it trained is in checkpoints/last.ckpt: --resume auto with the right --monitor goes on "
                "from there, --overwrite starts again"
            )
        if not self._said_unlogged and trainer.is_global_zero:
            self._said_unlogged = True
            idle = [
                str(stopper.monitor)
                for stopper in trainer.early_stopping_callbacks
                if stopper.monitor not in trainer.callback_metrics
            ]
            idle_note = f", and early stopping on {', '.join(idle)} never stops it" if idle else ""
            print(
                f"litforge: note: the model has not logged '{self.monitor}' ({self._logged_instead(trainer)}); "
                f"until it does, the run keeps checkpoints/last.ckpt only{idle_note}",
                file=sys.stderr,
                flush=True,
            )

    def _logged_instead(self, trainer: L.Trainer) -> str:
        """``it logs: a, b; did you mean a?``: what the model does log, and the name closest to ``monitor``."""
        logged = sorted(str(key) for key in trainer.callback_metrics)
        close = closest_logged(str(self.monitor), logged)
        stage = _stage(str(self.monitor))
        same_stage = sorted(  # val_loss/dataloader_idx_0 before val_acc for val_loss
            (name for name in logged if _stage(name) == stage),
            key=lambda name: -difflib.SequenceMatcher(None, str(self.monitor), name).ratio(),
        )
        if close is not None and _stage(close) == stage:
            hint = f"; did you mean {close}?"
        elif same_stage or close:  # val_acc for val_loss before train_loss, spelt alike
            hint = f"; --monitor {' or '.join((same_stage or [close])[:2])} picks it"
        else:
            hint = ""
        return f"it logs: {', '.join(logged) or 'nothing'}{hint}"

    def _save_last(self, trainer: L.Trainer) -> None:
        self.last_model_path = str(self._last_path)
        trainer.save_checkpoint(self._last_path)
        self._last_only_step = trainer.global_step


def _stage(metric: str) -> str:
    """``val`` of ``val_loss`` and of ``val/acc``."""
    return re.split(r"[_/]", metric)[0]


def _fitting(trainer: L.Trainer) -> bool:
    """Training for real: not the sanity check, a smoke test, or validate/test/predict."""
    return trainer.state.fn == TrainerFn.FITTING and not (trainer.sanity_checking or trainer.fast_dev_run)


def _averaged_in_at_the_end(trainer: L.Trainer) -> str | None:
    """The name of a ``StochasticWeightAveraging`` callback that copied its average into the model in its
    ``on_train_end``, which runs before this one's (Lightning runs checkpoint callbacks last); ``None`` when
    none did. (Lightning's ``WeightAveraging`` saves its average into every checkpoint itself.)"""
    for callback in trainer.callbacks:
        if isinstance(callback, StochasticWeightAveraging) and swa_copied_its_average(callback, trainer):
            return type(callback).__name__
    return None


def _saved_step(path: Path) -> int | None:
    """The ``global_step`` recorded in a checkpoint file (memory-mapped: the tensors are not read)."""
    if not path.is_file():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:  # unreadable: rewrite it
        return None
