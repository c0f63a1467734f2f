"""An export is written beside its folder and swapped in only once it is whole and verified.

``litforge export`` writes into a hidden ``.<out>.partial-*`` folder next to ``--out``. A crash, a Ctrl+C or a
refused model removes that folder and leaves the previous export untouched; a parity failure sets the new
export aside as ``<out>.failed`` (for its export.json) and keeps the previous one; only a verified export
replaces litforge's files in ``--out`` (other files there are kept).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from litforge.errors import UsageError
from litforge.export import metadata
from litforge.export.formats import FORMATS, format_module

ASSET_FOLDERS = ("tokenizer",)  # folders an export's save_assets writes


def export_files() -> set[str]:
    """The names litforge writes in an export folder: one file per format, export.json, asset folders."""
    return {format_module(name).FILENAME for name in FORMATS} | {metadata.FILENAME, *ASSET_FOLDERS}


@contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A new empty folder beside ``out`` to export into, with the permissions ``mkdir`` gives (mkdtemp's are
    owner-only); removed when the body raises (Ctrl+C included). Folders left by killed exports go first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(out)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    stage.chmod(0o777 & ~umask)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def publish(stage: Path, out: Path) -> list[str]:
    """Move the verified export in ``stage`` into ``out``; the previous export's files that the new one does
    not have (another ``--format``) are removed and returned. export.json goes last: a folder caught halfway
    has none, and loading it says so instead of trusting a mix."""
    if not out.exists():
        stage.rename(out)
        return []
    new = {path.name for path in stage.iterdir()}
    dropped = sorted(name for name in export_files() - new if (out / name).exists())
    _remove(out / metadata.FILENAME)
    for name in [*sorted(new - {metadata.FILENAME}), metadata.FILENAME]:
        _remove(out / name)
        os.replace(stage / name, out / name)
    for name in dropped:
        _remove(out / name)
    stage.rmdir()
    return dropped


def keep_other_formats(stage: Path, out: Path) -> list[str]:
    """The previous export's artifacts of formats the new one did not make (``--format pt2`` after an ONNX
    export), linked into ``stage`` with their export.json entries when both exports are of the same
    checkpoint, model class and --model arguments, with the same inputs, outputs and library versions, and
    each file still has the checksum recorded for it.
    Returns their format names; an export of another checkpoint keeps nothing (``publish`` drops them)."""
    try:
        old, new = metadata.read(out), metadata.read(stage)
    except (UsageError, OSError, ValueError):  # no previous export, or one that cannot be read
        return []
    same = all(
        old.get(key) == new.get(key)
        for key in ("inputs", "outputs", "output_head", "request_format", "versions")
    )  # pt2 and TorchScript files are tied to the torch that wrote them
    sources = [
        tuple(
            (export.get("source") or {}).get(key)
            for key in ("checkpoint_sha256", "model_class", "model_args")
        )
        for export in (old, new)
    ]
    if not same or sources[0] != sources[1]:
        return []
    kept = []
    for name, entry in old.get("formats", {}).items():
        file = out / str(entry.get("file", ""))
        passed = (entry.get("parity") or {}).get("passed")
        if (
            name in new["formats"]
            or not passed
            or not file.is_file()
            or metadata.sha256(file) != entry.get("sha256")
        ):
            continue
        try:
            os.link(file, stage / file.name)  # no copy of a large artifact: publish replaces the name only
        except OSError:
            shutil.copy2(file, stage / file.name)
        new["formats"][name] = entry
        kept.append(name)
    if kept:
        metadata.write(stage, new)
    return kept


def set_aside(stage: Path, failed: Path) -> None:
    """Keep an export that failed its parity check at ``failed`` (replacing an older one), for inspection."""
    _remove(failed)
    stage.rename(failed)


def _remove_abandoned(out: Path) -> None:
    """Remove the staging folders of exports into ``out`` whose process is gone (``kill -9``, a crash)."""
    for folder in out.parent.glob(f".{out.name}.partial-*"):
        pid = folder.name.removeprefix(f".{out.name}.partial-").partition("-")[0]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
