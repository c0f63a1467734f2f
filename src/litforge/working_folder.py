"""The folder a ``litforge`` command started in: where user modules (``--model mymod.LitModel``) are imported
from, and what errors name when one is missing.

jsonargparse changes into a config file's folder while it reads the file, so ``Path.cwd()`` in its errors
names that folder instead; the entry point records the real one first (``remember``).
"""

from __future__ import annotations

import difflib
import re
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
    top = module.split(".")[0]
    file = top + ".py"
    here = sorted(path.stem for path in _STARTED_IN[0].glob("*.py"))[:1000]
    if close := difflib.get_close_matches(top, here, n=1, cutoff=0.75):
        return f" (no {file} in the folder litforge runs in, {_STARTED_IN[0]}; did you mean {close[0]}, {close[0]}.py?)"
    return (
        f" (not installed, and no {file} in the folder litforge runs in, {_STARTED_IN[0]}: run it from the "
        f"folder that holds {file}, or add that folder to PYTHONPATH)"
    )


def modules_defining(class_name: str) -> list[str]:
    """``["vae.VAE"]``: the class paths of ``class_name`` defined at the top of a ``.py`` file in the folder
    the command started in (the files are read as text, never imported); for ``--model VAE``."""
    pattern = re.compile(rf"^class {re.escape(class_name)}\b", re.M)
    found = []
    for path in sorted(_STARTED_IN[0].glob("*.py"))[:200]:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")[:1_000_000]
        except OSError:
            continue
        if pattern.search(text):
            found.append(f"{path.stem}.{class_name}")
    return found
