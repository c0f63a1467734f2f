"""Shared fixtures: the tiny-config fixture (1-2 epochs, few batches, CPU, tmp_path) and a CLI runner."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cli_helpers import PLUGIN_INSTALLED, TINY_TRAINER, CLIResult, run_cli

pytest_plugins = ["pytester", *([] if PLUGIN_INSTALLED else ["litforge.testing.plugin"])]

# The one zoo of user-style modules, tests/user_models/usermods.py, imports as ``usermods`` from every folder.
sys.path.append(str(Path(__file__).with_name("user_models")))


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
