"""Fixtures of the ``litforge tune`` tests: a space-file writer and an env that finds the test models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from tune_helpers import HERE


@pytest.fixture
def write_space(tmp_path: Path):
    """``write_space({...})`` -> path of a YAML space file in ``tmp_path``."""

    def _write(space: dict[str, Any], name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(space, sort_keys=False))
        return path

    return _write


@pytest.fixture
def flaky_env() -> dict[str, str]:
    """Lets the tune subprocess import ``flaky_models.FlakyClassifier``."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
