"""litforge's lean hook dispatch calls exactly the hooks Lightning's would, in the same order."""

from __future__ import annotations

import subprocess
import sys

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.profilers import SimpleProfiler
from lightning.pytorch.trainer import call

from litforge._compat import lean_hooks
from litforge.data import SyntheticDataModule
from litforge.models import Classifier

STEP_HOOKS = (
    "on_train_batch_start",
    "on_before_zero_grad",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_train_batch_end",
    "on_validation_batch_end",
    "on_train_epoch_end",
)


class Recorder(Callback):
    """Records (hook, the module's _current_fx_name inside it) for every hook in STEP_HOOKS."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []


def _recording(name: str):
    def hook(self: Recorder, trainer: L.Trainer, module: L.LightningModule, *args, **kwargs) -> None:
        self.calls.append((name, module._current_fx_name))

    return hook


for _name in STEP_HOOKS:
    setattr(Recorder, _name, _recording(_name))


class EndOnly(Callback):
    def on_train_batch_end(self, *args, **kwargs) -> None:
        pass


class Silent(Callback):
    """Overrides nothing: the lean dispatch skips it."""


class InstanceHook(Callback):
    """A hook set on the instance, not the class: still called."""

    def __init__(self) -> None:
        self.seen = 0
        self.on_train_batch_end = self._count

    def _count(self, *args, **kwargs) -> None:
        self.seen += 1


class ManualClassifier(Classifier):
    """Manual optimization: hooks run nested inside training_step, which must get its name back."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.names_after_backward: list[str | None] = []

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        loss = self._step(batch, "train")
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        self.names_after_backward.append(self._current_fx_name)
        return loss


@pytest.fixture
def restore_dispatch():
    yield
    lean_hooks.uninstall()


def _fit(callbacks: list[Callback], model: type[Classifier] = Classifier, **trainer_kwargs) -> L.Trainer:
    torch.manual_seed(0)
    data = SyntheticDataModule(num_samples=200, num_features=8, batch_size=32)
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **trainer_kwargs,
    )
    trainer.fit(model(num_features=8, num_classes=4, hidden_dim=8), data)
    return trainer


def test_lean_dispatch_makes_the_same_calls_as_lightnings(restore_dispatch) -> None:
    lean_hooks.uninstall()
    lightning_recorder, lightning_instance = Recorder(), InstanceHook()
    _fit([Silent(), lightning_recorder, lightning_instance])

    assert lean_hooks.install()
    lean_recorder, lean_instance = Recorder(), InstanceHook()
    _fit([Silent(), lean_recorder, lean_instance])

    assert len(lightning_recorder.calls) > 40
    assert lean_recorder.calls == lightning_recorder.calls
    assert lean_instance.seen == lightning_instance.seen > 0


@pytest.mark.parametrize("lean", [False, True])
def test_hooks_nested_in_training_step_give_its_name_back(restore_dispatch, lean: bool) -> None:
    lean_hooks.install() if lean else lean_hooks.uninstall()
    trainer = _fit([Recorder()], model=ManualClassifier)
    names = trainer.lightning_module.names_after_backward
    assert names and set(names) == {"training_step"}


def test_overrides_tells_no_op_hooks_from_real_ones() -> None:
    assert not lean_hooks.overrides(Silent(), "on_train_batch_end")
    assert lean_hooks.overrides(InstanceHook(), "on_train_batch_end")
    assert lean_hooks.overrides(EndOnly(), "on_train_batch_end")
    assert not lean_hooks.overrides(EndOnly(), "on_train_batch_start")


def test_a_configured_profiler_still_times_every_callback_hook(restore_dispatch, tmp_path) -> None:
    lean_hooks.install()
    profiler = SimpleProfiler(dirpath=tmp_path, filename="report")
    _fit([Silent()], profiler=profiler)
    assert "[Callback]Silent.on_train_batch_end" in profiler.recorded_durations


def test_litforge_lean_hooks_0_keeps_lightnings_dispatch(restore_dispatch, monkeypatch) -> None:
    lean_hooks.install()
    monkeypatch.setenv("LITFORGE_LEAN_HOOKS", "0")
    assert not lean_hooks.install()
    assert call._call_callback_hooks is lean_hooks._ORIGINAL["_call_callback_hooks"]


def test_only_the_litforge_process_entry_point_freezes_the_heap_at_exit() -> None:
    probe = (
        "import atexit, gc, sys\n"
        "from litforge.cli import main\n"
        "try:\n"
        "    main(['fit', '--help'])\n"  # called as a library: the heap stays as it was
        "except SystemExit:\n"
        "    pass\n"
        "print('library call froze:', gc.get_freeze_count() > 0)\n"
        "atexit.register(lambda: print('entry point froze:', gc.get_freeze_count() > 0))\n"
        "sys.argv = ['litforge', 'fit', '--help']\n"
        "main()\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300).stdout
    assert "library call froze: False" in out
    assert "entry point froze: True" in out
