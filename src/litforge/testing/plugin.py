"""litforge's pytest plugin (entry point ``pytest11``; before installing: ``pytest -p litforge.testing.plugin``).

Fixtures:
    tiny_trainer: ``tiny_trainer(**overrides)`` builds a CPU Trainer that runs in seconds, rooted in tmp_path.
    run_dir: a litforge ``RunDir`` (``<tmp_path>/runs/test/run``) for commands that write a run folder.

With ``litforge.testing.parametrize_checks`` the standard checks run as one test per model and check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from litforge.engine.run_dir import RunDir

if TYPE_CHECKING:  # Lightning is imported only when a test uses a fixture (keeps pytest startup fast)
    import lightning as L


@pytest.fixture
def tiny_trainer(tmp_path: Path) -> Callable[..., L.Trainer]:
    """``trainer = tiny_trainer(fast_dev_run=True)``: 1 epoch, 2 batches per loop, CPU, no logger or
    checkpoints, ``default_root_dir=tmp_path``; keyword arguments override any Trainer setting."""

    def build(**overrides: Any) -> L.Trainer:
        from litforge.testing.harness import tiny_trainer as _tiny_trainer

        return _tiny_trainer(**{"default_root_dir": str(tmp_path), **overrides})

    return build


@pytest.fixture
def run_dir(tmp_path: Path) -> RunDir:
    """A run folder under ``tmp_path`` (created): ``--trainer.default_root_dir {run_dir.root}
    --experiment {run_dir.experiment} --run {run_dir.run}`` writes there."""
    run = RunDir(tmp_path / "runs", "test", "run")
    run.path.mkdir(parents=True)
    return run
