"""The one reader of checkpoint files: checksum, then tensors and plain containers only (``weights_only``).

checkpoint = read_checkpoint(Path("runs/classifier/v0/checkpoints/best.ckpt"))   # export, test, resume

A file whose content changed after litforge sealed it is refused (``CheckpointCorrupt``); one without a
seal (plain Lightning) loads, and ``note_if_unverified`` says so once the caller has accepted it. A file that weights-only loading
refuses is reported as unsafe, never with torch's advice to retry with ``weights_only=False`` (which would
run whatever it holds); a file that is not a checkpoint at all (a zip of something else, garbage, a
truncated write) as unreadable. Tensors are memory-mapped: reading the metadata costs no tensor I/O.
"""

from __future__ import annotations

import contextlib
import pickle
import pickletools
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from litforge.errors import UsageError
from litforge.resilience.checkpoint_checksum import CheckpointCorrupt, verify_checkpoint
from litforge.resilience.checkpoint_types import allow_plain_data


def read_checkpoint(path: Path, flag: str = "--ckpt_path") -> dict[str, Any]:
    """Load a Lightning checkpoint safely (see the module docstring).

    Raises:
        UsageError: naming ``flag`` and the file, if it is missing, corrupt, not a checkpoint, or holds
            pickled objects that weights-only loading refuses.
    """
    if not path.is_file():
        raise UsageError(f"{flag}: no such checkpoint file: {path}")
    archive = zipfile.is_zipfile(path)  # torch.save's format; a legacy pickle or a truncated file is not
    if archive and not _is_torch_archive(path):
        raise UsageError(f"{flag}: {path} is a zip archive but not a PyTorch checkpoint (no data.pkl inside)")
    if not archive and _starts_like_a_zip(path):
        raise UsageError(
            f"{flag}: {path} is a truncated checkpoint (its zip archive ends early: an interrupted write or copy)"
        )
    if not archive and _is_text(path):
        config = (
            " (a config file goes to --config)" if path.suffix.lower() in (".yaml", ".yml", ".json") else ""
        )
        raise UsageError(f"{flag}: {path} is a text file, not a checkpoint{config}")
    try:
        if archive:
            verify_checkpoint(path)
    except CheckpointCorrupt as error:
        raise UsageError(f"{flag}: {error}") from None
    except OSError as error:
        raise UsageError(f"{flag}: cannot read {path}: {error.strerror}") from None
    allow_plain_data()  # paths, numpy arrays, datetimes beside the tensors
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error says enough
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=archive)
    except pickle.UnpicklingError as err:
        if not _well_formed_pickle(path):
            raise UsageError(
                f"{flag}: {path} is not a readable checkpoint (not a valid pickle stream)"
            ) from None
        raise UsageError(
            f"{flag}: {path} is refused as unsafe: loading it needs more than tensors and plain containers "
            f"({_unpickler_reason(err)}), and unpickling that could run code"
        ) from None
    except Exception as err:  # torch raises many types for truncated or foreign files
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        reason = reason.split(". ")[0]  # torch's first sentence says what is wrong; the rest is advice
        reason = reason if len(reason) <= 200 else reason[:197] + "..."
        raise UsageError(f"{flag}: {path} is not a readable checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise UsageError(f"{flag}: {path} has no 'state_dict'; is it a Lightning checkpoint?")
    return checkpoint


def _is_text(path: Path) -> bool:
    """Whether the file's first KiB is UTF-8 text without NUL bytes (a YAML or JSON file, a log): no
    checkpoint, zipped or pickled, starts like that."""
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError:
        return False
    if not head or b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(head) - 3  # a character cut at the end of the KiB
    return True


def _starts_like_a_zip(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def note_if_unverified(path: Path) -> None:
    """One line on stderr when ``path`` carries no litforge checksum (written by plain Lightning or
    ``torch.save``): it is used, but nothing vouches for its content. Callers say it once the file is
    accepted, so a refused file still gets a single error line."""
    try:
        sealed = verify_checkpoint(path)
    except (CheckpointCorrupt, OSError):
        return  # read_checkpoint has refused it already
    if not sealed:
        print(f"litforge: note: {path} has no litforge checksum (not written by litforge): used unverified",
              file=sys.stderr)  # fmt: skip


def _is_torch_archive(path: Path) -> bool:
    """A ``torch.save`` zip holds ``<name>/data.pkl``."""
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/data.pkl") for name in archive.namelist())


def _well_formed_pickle(path: Path) -> bool:
    """Whether the checkpoint's (first) pickle parses, opcode by opcode, without running any of it."""
    try:
        with contextlib.ExitStack() as stack:
            if zipfile.is_zipfile(path):
                archive = stack.enter_context(zipfile.ZipFile(path))
                data = next(name for name in archive.namelist() if name.endswith("/data.pkl"))
                handle = stack.enter_context(archive.open(data))
            else:
                handle = stack.enter_context(path.open("rb"))
            for _ in pickletools.genops(handle):
                pass
    except Exception:  # garbage, truncation: not a pickle
        return False
    return True


def _unpickler_reason(error: Exception) -> str:
    """The weights-only unpickler's reason, without torch's advice to allow-list or retry unsafely."""
    advice = ("weights only load failed", "weights_only", "check the documentation", "can still be loaded")
    text = str(error).split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if not any(words in line.lower() for words in advice)]
    return (reasons[0] if reasons else "not tensors").split(". Please use", 1)[0].rstrip(".")
