"""The export formats litforge knows, by name: ``onnx``, ``pt2`` and ``torchscript`` (legacy)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from litforge.errors import UsageError

# A loaded artifact: numpy inputs (in ``input_names`` order) -> its outputs as numpy, in export.json's order.
Runner = Callable[..., list[np.ndarray]]
# Each format is a module ``litforge.export.<name>`` with ``export``, ``load``, ``FILENAME`` and ``RUNTIME``;
# it is imported when used, so serving an ONNX artifact does not import torch. ``litforge export`` writes
# every format unless --format names some; a consumer (serve, predict) takes the first one available.
FORMATS = ("onnx", "pt2", "torchscript")


def parse_formats(text: str) -> list[str]:
    """``"onnx,pt2"`` -> ``["onnx", "pt2"]``; ``UsageError`` naming an unknown format."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        given = ", ".join(unknown) if unknown else repr(text)
        raise UsageError(f"--format: unknown format {given}; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(names))


def load_runner(name: str, path: Path, input_names: list[str], threads: int | None = None) -> Runner:
    """Load an artifact of format ``name`` in its own runtime as ``run(*numpy_inputs) -> numpy``."""
    return format_module(name).load(path, input_names, threads)


def format_module(name: str) -> ModuleType:
    """The module of export format ``name`` (one of ``FORMATS``)."""
    if name not in FORMATS:
        raise UsageError(f"unknown export format {name!r}; choose from {', '.join(FORMATS)}")
    return importlib.import_module(f"litforge.export.{name}")
