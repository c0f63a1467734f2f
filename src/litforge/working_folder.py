"""The folder a ``litforge`` command started in: where user modules (``--model mymod.LitModel``) are imported
from, and what errors name when one is missing.

jsonargparse changes into a config file's folder while it reads the file, so ``Path.cwd()`` in its errors
names that folder instead; the entry point records the real one first (``remember``).
"""

from __future__ import annotations

import sys
from pathlib import Path

_STARTED_IN = [Path.cwd()]


def remember() -> None:
    """Record the current folder and let class paths name modules in it, as ``python -m`` does. It goes
    last on ``sys.path``, so a local file never shadows an installed package."""
    _STARTED_IN[0] = Path.cwd()
    if str(_STARTED_IN[0]) not in sys.path and "" not in sys.path:
        sys.path.append(str(_STARTED_IN[0]))


def started_in() -> Path:
    """The folder the command started in (``remember``)."""
    return _STARTED_IN[0]


def missing_module_hint(module: str) -> str:
    """`` (not installed, and no mymod.py in the folder litforge runs in, /work: ...)`` for a missing module."""
    file = module.split(".")[0] + ".py"
    return (
        f" (not installed, and no {file} in the folder litforge runs in, {_STARTED_IN[0]}: run it from the "
        f"folder that holds {file}, or add that folder to PYTHONPATH)"
    )
