"""Fixtures for the user-model tests: a working folder holding ``usermods.py``, as a user's project would."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from user_helpers import USERMODS

from cli_helpers import CLIResult, run_cli


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``tmp_path`` with ``usermods.py`` in it."""
    shutil.copy(USERMODS, tmp_path / "usermods.py")
    return tmp_path


@pytest.fixture
def user_cli(project: Path):
    """``user_cli("fit", ...)``: the real console script, run in the project folder."""

    def _run(*args: str, **kwargs) -> CLIResult:
        return run_cli(*args, cwd=kwargs.pop("cwd", project), **kwargs)

    return _run
