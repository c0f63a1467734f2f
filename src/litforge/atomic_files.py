"""Files that are never half-written: the one way litforge writes a file someone may read meanwhile.

    with atomic_path(Path("export/model.onnx")) as tmp:    # a library writes to a path
        program.save(str(tmp))
    write_atomically(Path("ckpt"), lambda handle: torch.save(state, handle))     # or to a handle
    write_text_atomically(Path("perf.json"), text)

Each writes ``.<name>.tmp-<pid>-<random>`` in the target's folder, fsyncs it, renames it over the target
and fsyncs the folder: a reader (or a process killed at any moment) sees the old file or the new one,
never half of one. A failed write removes its temporary file. Ground floor: imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

TEMPORARY = ".{name}.tmp-{pid}-{token}"  # leftovers of a killed write match ``.*.tmp-*``


@contextlib.contextmanager
def atomic_path(target: Path, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path beside ``target`` to write to; renamed over ``target`` when the block ends
    without an error, removed when it raises. ``keep_suffix``: the temporary name ends like ``target``
    (for writers that check it: ``torch.export.save`` warns about any name not ending in ``.pt2``)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    name = TEMPORARY.format(name=target.name, pid=os.getpid(), token=secrets.token_hex(4))
    tmp = target.with_name(name + (target.suffix if keep_suffix else ""))
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(target.parent)


def write_atomically(target: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``target`` through ``write(handle)``: a binary handle that can also read and seek (the
    checkpoint seal reads back what was written). The file gets a plain file's permissions (0666 less the
    umask)."""
    with atomic_path(target) as tmp:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w+b") as handle:
            write(handle)


def write_text_atomically(target: Path, text: str) -> None:
    data = text.encode()
    write_atomically(target, lambda handle: handle.write(data))


def _fsync_file(path: Path) -> None:
    if path.is_file():
        _fsync(path, os.O_RDONLY)


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    """Make a file's content (or a folder's renames) durable; a no-op where it cannot be opened."""
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
