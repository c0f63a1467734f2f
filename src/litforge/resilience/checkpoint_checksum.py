"""A checksum of every record of a checkpoint, sealed in the checkpoint file itself, and its check.

python -c "from litforge.resilience.checkpoint_checksum import verify_checkpoint as v; print(v('best.ckpt'))"

``torch.save`` writes a zip archive, and ``torch.load`` reads one whose tensor bytes changed (a bit flipped
on a disk, in a copy, in memory) without noticing: the damaged weights load, train and export. Yet
``torch.save`` already computes a CRC32 of every record it writes (the pickled structure, each tensor's
bytes) and lists them, with the records' names, sizes and offsets, in the archive's central directory.
``save_checksummed`` (used by ``AtomicCheckpointIO`` for every checkpoint litforge writes) seals that
list: a SHA-256 of it goes into the archive's comment, the one free-form field of the zip format, so the
file stays a standard zip that every reader (``torch.load``, also with ``mmap=True``, ``zipfile``) opens as
before. ``verify_checkpoint`` checks the seal, then recomputes every record's CRC32.

So any changed byte of content is caught: in a record, by its CRC32 (which catches every error of up to
32 consecutive bits, and other damage with odds of 1 in 4 billion); in the list, by the SHA-256. Sealing
costs no second pass over the data when saving (the CRC32s are computed anyway); checking costs one
CRC32 pass (~2-3 GB/s). Seal and content are one file written at once (temporary file, fsync, rename),
so a kill at any moment leaves either the old file or the new one, each with its own matching seal.
Files written by plain Lightning or ``torch.save`` have no seal: they load as before, unverified.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from pathlib import Path
from typing import IO, Any

import torch

from litforge.errors import UsageError

_PREFIX = b"litforge-seal-v1:"  # then the hex SHA-256 of the records' list (``_records_digest``)
_COMMENT_SIZE = len(_PREFIX) + 64
_END_RECORD = b"PK\x05\x06"  # a zip's "end of central directory" record: 22 bytes, then the comment
_END_SIZE = 22


class CheckpointCorrupt(UsageError):
    """A checkpoint's content differs from what litforge wrote: a record's bytes or its list changed."""


def save_checksummed(checkpoint: Any, handle: IO[bytes]) -> None:
    """``torch.save(checkpoint, handle)``, sealed: the SHA-256 of its records' list in the zip comment.

    ``handle`` must be readable and seekable (the list is read back, and the comment length, the
    archive's last two bytes, rewritten). The CRC32s are computed even where torch's
    ``set_crc32_options(False)`` turned them off.
    """
    crc32_was = torch.serialization.get_crc32_options()
    torch.serialization.set_crc32_options(True)
    try:
        torch.save(checkpoint, handle)
    finally:
        torch.serialization.set_crc32_options(crc32_was)
    handle.flush()
    end = handle.tell()
    handle.seek(end - _END_SIZE)
    last = handle.read(_END_SIZE)
    if last[:4] != _END_RECORD or last[-2:] != b"\0\0":
        raise RuntimeError("torch.save did not end its archive with a comment-less zip end record")
    handle.seek(0)
    with zipfile.ZipFile(handle) as archive:
        comment = _PREFIX + _records_digest(archive, end).encode()
    handle.seek(end - 2)  # the comment length, 0 so far
    handle.write(struct.pack("<H", len(comment)) + comment)


def verify_checkpoint(path: str | Path) -> bool:
    """Check a checkpoint file against the seal litforge wrote into it.

    Returns:
        ``True`` when the file carries litforge's seal and its content matches; ``False`` when it has no
        seal (written by plain Lightning or ``torch.save``): it may be used, but nothing vouches for it.

    Raises:
        CheckpointCorrupt: a record's bytes, the records' list or the file's end changed after it was
            written (on a disk, in a copy), or the file was truncated.
        OSError: the file cannot be read.
    """
    path = Path(path)
    with path.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - _END_SIZE - _COMMENT_SIZE))
        tail = file.read()
        if tail[-_END_SIZE:][:4] == _END_RECORD and tail[-2:] == b"\0\0":
            return False  # torch.save's own ending: no seal
        end, comment = tail[:_END_SIZE], tail[_END_SIZE:]
        sealed = (
            len(tail) == _END_SIZE + _COMMENT_SIZE
            and end[:4] == _END_RECORD
            and end[-2:] == struct.pack("<H", _COMMENT_SIZE)
            and comment.startswith(_PREFIX)
        )
        if not sealed:
            raise CheckpointCorrupt(
                f"{path}: corrupt checkpoint: the end of the file is damaged (truncated?)"
            )
        file.seek(0)
        try:
            with zipfile.ZipFile(file) as archive:
                if _records_digest(archive, size - _COMMENT_SIZE).encode() != comment[len(_PREFIX) :]:
                    raise CheckpointCorrupt(
                        f"{path}: corrupt checkpoint: its list of records does not match its seal"
                    )
                damaged = archive.testzip()  # every record's CRC32, recomputed
        except (zipfile.BadZipFile, EOFError, ValueError) as error:
            raise CheckpointCorrupt(f"{path}: corrupt checkpoint: {error}") from None
    if damaged is not None:
        raise CheckpointCorrupt(
            f"{path}: corrupt checkpoint: the bytes of {damaged} do not match the CRC32 recorded when it "
            "was written (changed on disk or in a copy)"
        )
    return True


def _records_digest(archive: zipfile.ZipFile, size: int) -> str:
    """SHA-256 of the archive's size (without the seal) and each record's name, CRC32, sizes and offset."""
    digest = hashlib.sha256(f"{size}\n".encode())
    for record in archive.infolist():
        fields = (record.filename, record.CRC, record.file_size, record.compress_size, record.header_offset)
        digest.update("\0".join(map(str, fields)).encode() + b"\n")
    return digest.hexdigest()
