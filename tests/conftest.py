"""Shared fixtures: the tiny-config fixture (1-2 epochs, few batches, CPU, tmp_path) and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"

# litforge's pytest plugin (fixtures tiny_trainer, run_dir) loads through its pytest11 entry point once
# litforge is installed; a checkout on PYTHONPATH without that metadata loads it here (never both:
# pytest refuses a plugin registered twice). PLUGIN_ARGS does the same for pytester runs.
_PLUGIN = "litforge.testing.plugin"
PLUGIN_INSTALLED = any(ep.value == _PLUGIN for ep in entry_points(group="pytest11"))
PLUGIN_ARGS = [] if PLUGIN_INSTALLED else ["-p", _PLUGIN]
pytest_plugins = ["pytester", *([] if PLUGIN_INSTALLED else [_PLUGIN])]

# Flags that shrink any fit to seconds: a few batches, CPU, no progress bar noise.
TINY_TRAINER = [
    "--trainer.max_epochs", "2",
    "--trainer.limit_train_batches", "5",
    "--trainer.limit_val_batches", "2",
    "--trainer.limit_test_batches", "2",
    "--trainer.limit_predict_batches", "2",
    "--trainer.accelerator", "cpu",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip


@dataclass
class CLIResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> CLIResult:
    """Run the real ``litforge`` console script (from this interpreter's environment) in ``cwd``."""
    exe = Path(sys.executable).with_name("litforge")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "litforge"]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("LITFORGE_DEBUG", None)
    proc = subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CLIResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(tmp_path: Path):
    """``cli("fit", ...)`` runs litforge in ``tmp_path`` (so ``runs/`` lands there)."""

    def _run(*args: str, **kwargs) -> CLIResult:
        return run_cli(*args, cwd=kwargs.pop("cwd", tmp_path), **kwargs)

    return _run


@pytest.fixture
def tiny_trainer_args() -> list[str]:
    return list(TINY_TRAINER)


@pytest.fixture(scope="session")
def trained_digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny digits run (2 short epochs) trained once per session: ``<run>/checkpoints/best.ckpt``."""
    cwd = tmp_path_factory.mktemp("digits-run")
    result = run_cli("fit", *TINY_TRAINER, "--run", "tiny", cwd=cwd)
    assert result.returncode == 0, result.output
    return cwd / "runs" / "classifier" / "tiny"
