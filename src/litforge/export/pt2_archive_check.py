"""Refuse a ``.pt2`` archive that ``torch.export.load`` would unpickle, before it is loaded.

``torch.export.load`` is documented as unsafe for untrusted files: a weights or constants entry marked
``use_pickle`` is read with ``torch.load(weights_only=False)``, legacy ``.pt`` weights and the sample
inputs fall back to it, custom and opaque objects are unpickled, and AOTInductor entries load shared
libraries. litforge's own exports contain none of that (raw tensor files described by JSON), so an archive
is loaded only when every entry is one of these, the weight configs mark nothing pickled, and the sample
inputs load with ``weights_only=True``:

    <root>/archive_format, archive_version, byteorder, .data/version, .data/serialization_id
    <root>/models/<name>.json                               the graph (checked by torch's verifier on load)
    <root>/data/weights/<name>_weights_config.json, weight_<n>
    <root>/data/constants/<name>_constants_config.json, tensor_<n>
    <root>/data/sample_inputs/<name>.pt
    <root>/extra/...                                        read as text
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import NoReturn

import torch

from litforge.errors import UsageError

_FIXED = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id"}
_ALLOWED = re.compile(
    r"models/[\w.-]+\.json"
    r"|data/weights/(?:[\w.-]+_weights_config\.json|weight_\d+)"
    r"|data/constants/(?:[\w.-]+_constants_config\.json|tensor_\d+)"
    r"|data/sample_inputs/[\w.-]+\.pt"
    r"|extra/.+"
)
_RAW_PAYLOAD = {"weights": re.compile(r"weight_\d+"), "constants": re.compile(r"tensor_\d+")}


def check_pt2_archive(path: Path) -> None:
    """``UsageError`` naming ``path`` and the entry when loading it would unpickle anything."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise UsageError(f"{path} is not a .pt2 archive ({err})") from None
    with archive:
        names = archive.namelist()
        root = names[0].split("/", 1)[0] + "/" if names else ""
        for name in names:
            relative = name[len(root) :] if name.startswith(root) else None
            if relative is None or not (relative in _FIXED or _ALLOWED.fullmatch(relative)):
                _refuse(path, f"entry {name!r} is not part of a plain torch.export archive")
            if relative.endswith("_config.json"):
                _check_payload_config(path, name, archive.read(name))
            elif relative.startswith("data/sample_inputs/"):
                _check_weights_only(path, name, archive.read(name))


def _check_payload_config(path: Path, name: str, text: bytes) -> None:
    """Every weight/constant of a payload config is a raw tensor file, none pickled."""
    kind = "weights" if "/data/weights/" in f"/{name}" else "constants"
    try:
        entries = json.loads(text)["config"]
        items = [(str(fqn), meta.get("use_pickle"), meta.get("path_name")) for fqn, meta in entries.items()]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        _refuse(path, f"{name} is not a payload config ({type(err).__name__})")
    for fqn, pickled, file in items:
        if pickled is not False:
            _refuse(path, f"{kind} entry {fqn!r} in {name} is pickled (use_pickle)")
        if not isinstance(file, str) or not _RAW_PAYLOAD[kind].fullmatch(file):
            _refuse(path, f"{kind} entry {fqn!r} in {name} is not a raw tensor file ({file!r})")


def _check_weights_only(path: Path, name: str, data: bytes) -> None:
    """torch loads the sample inputs with ``weights_only=True`` and retries unsafely when that fails."""
    if not data:
        return
    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception:  # anything weights-only loading refuses would be retried with weights_only=False
        _refuse(path, f"{name} holds more than tensors and plain containers")


def _refuse(path: Path, reason: str) -> NoReturn:
    raise UsageError(f"{path} is refused as unsafe: {reason}; litforge loads .pt2 files without unpickling")
