"""``export.json``: everything a consumer needs to run an export folder without the training code.

Formats and files (with sha256), input/output names, dtypes and shapes (dynamic axes by name), class
labels, preprocessing (the normalisation constants already inside the graph), the source checkpoint,
library versions, parity figures and, with ``--benchmark``, latency and throughput.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any

from litforge.atomic_files import write_text_atomically
from litforge.errors import UsageError
from litforge.predictions.output_head import HEADS, NAMED_OUTPUTS

if TYPE_CHECKING:  # reading export.json (serve, predict --artifact) needs no torch
    import torch

FILENAME = "export.json"
SCHEMA_VERSION = 1


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def note_if_source_changed(folder: Path) -> None:
    """One line on stderr when the checkpoint an export was made from is still where it was but has changed
    since (a resumed or retrained run rewrote ``best.ckpt``): the export runs the older weights."""
    source = read(folder).get("source") or {}
    checkpoint, recorded = source.get("checkpoint"), source.get("checkpoint_sha256")
    if not checkpoint or not recorded or not Path(checkpoint).is_file():
        return
    if sha256(Path(checkpoint)) != recorded:
        print(
            f"litforge: note: {checkpoint} changed after {folder} was exported from it (a resumed or new run "
            f"rewrote it); this uses the weights of the export -- run `litforge export --ckpt {checkpoint}` "
            "for the new ones",
            file=sys.stderr,
        )


def versions() -> dict[str, str | None]:
    """Installed versions of the libraries an artifact depends on."""

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        name: version(name)
        for name in ("litforge", "torch", "lightning", "onnx", "onnxscript", "onnxruntime")
    }


def preprocessing(module: torch.nn.Module) -> dict[str, Any]:
    """The normalisation the graph applies (from a ``standardize`` submodule's buffers), for the record."""
    import torch

    standardize = getattr(module, "standardize", None)
    mean, std = getattr(standardize, "mean", None), getattr(standardize, "std", None)
    if isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor):
        return {
            "inputs": "raw features, as the datamodule reads them",
            "in_graph": True,
            "normalization": {"formula": "(x - mean) / std", "mean": mean.tolist(), "std": std.tolist()},
        }
    return {
        "inputs": "as the module's forward() takes them: what the datamodule does before forward is not in the graph",
        "in_graph": None,  # litforge knows of no normalisation; any in forward() itself is in the graph
        "normalization": None,
    }


def timestamp() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write(folder: Path, metadata: dict[str, Any]) -> Path:
    """Write ``folder/export.json`` atomically."""
    path = folder / FILENAME
    write_text_atomically(path, json.dumps(metadata, indent=2, allow_nan=False) + "\n")
    return path


def _export_folder_hint(folder: Path) -> str:
    """What to do with a folder that is not an export: its ``export/`` inside, or how to create one."""
    if (folder / "export" / FILENAME).is_file():
        return f"did you mean {folder / 'export'}?"
    checkpoints = [folder / "checkpoints" / name for name in ("best.ckpt", "last.ckpt")]
    if found := next((path for path in checkpoints if path.is_file()), None):
        return f"it is a run folder: create its export with 'litforge export --ckpt {found}'"
    return "create one with 'litforge export'"


def read(folder: Path) -> dict[str, Any]:
    """Read ``folder/export.json``; ``UsageError`` when the folder is not an export folder."""
    path = folder / FILENAME
    if folder.is_file():  # a checkpoint (or a model file) given where its export folder goes
        raise UsageError(
            f"{folder} is a file, not an export folder; a checkpoint is exported first: "
            f"'litforge export --ckpt {folder}' (then use its export/ folder)"
        )
    if not folder.is_dir():
        raise UsageError(f"no such export folder: {folder}")
    if not path.is_file():
        raise UsageError(f"{folder} is not an export folder (no {FILENAME}); {_export_folder_hint(folder)}")
    try:
        metadata = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err}") from None
    if not isinstance(metadata, dict) or not metadata.get("formats"):
        raise UsageError(f"{path} lists no formats; re-create it with 'litforge export'")
    if not isinstance(metadata["formats"], dict):
        raise UsageError(f"{path}: 'formats' must be an object")
    if metadata.get("output_head", "classification") not in (*HEADS, NAMED_OUTPUTS):
        raise UsageError(f"{path}: output_head {metadata['output_head']!r} is not one of {', '.join(HEADS)}")
    for name, entry in metadata["formats"].items():
        if isinstance(entry, dict) and entry.get("file") is not None:
            member(folder, entry["file"], f"{path}: formats.{name}.file")
    return metadata


def member(folder: Path, name: Any, where: str) -> Path:
    """``folder/name`` when ``name`` is a relative path that stays inside ``folder`` (symbolic links
    resolved); ``UsageError`` naming ``where`` otherwise. Nothing is opened or read."""
    relative = PurePosixPath(name) if isinstance(name, str) and name and "\\" not in name else None
    if relative is None or relative.is_absolute() or ".." in relative.parts:
        raise UsageError(f"{where}: {name!r} is not a file name inside the export folder; refused")
    path = folder / relative
    if not path.resolve().is_relative_to(folder.resolve()):
        raise UsageError(f"{where}: {name!r} leads outside the export folder (a link); refused")
    return path


def public(metadata: dict[str, Any]) -> dict[str, Any]:
    """export.json as a server publishes it (``GET /info``): no local paths. The source keeps the classes,
    the checkpoint's file name and sha256; notes (which may quote paths) are left out."""
    source = dict(metadata.get("source") or {})
    source.pop("notes", None)
    if source.get("checkpoint"):
        source["checkpoint"] = PurePath(str(source["checkpoint"])).name
    return {**metadata, "source": source}
