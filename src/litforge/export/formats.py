"""The export formats litforge knows, by name: ``onnx``, ``pt2`` and ``torchscript`` (legacy)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from litforge.cli.errors import UsageError
from litforge.export import onnx, pt2, torchscript
from litforge.export.spec import Runner

FORMATS: dict[str, ModuleType] = {"onnx": onnx, "pt2": pt2, "torchscript": torchscript}
DEFAULT_FORMATS = ("onnx", "pt2", "torchscript")
# Preference when a consumer (serve, predict) picks one format from an export folder.
SERVING_PREFERENCE = ("onnx", "pt2", "torchscript")


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
    return FORMATS[name].load(path, input_names, threads)
