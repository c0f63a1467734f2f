"""Checkpoints carry a seal of their records' CRC32s: a bit flipped in a tensor is caught by every litforge
reader (``--resume auto`` skips the file, ``test`` refuses it), while plain Lightning checkpoints still load."""

from __future__ import annotations

import struct
import time
import zipfile
from pathlib import Path

import pytest
import torch

from litforge.resilience import AtomicCheckpointIO
from litforge.resilience.checkpoint_checksum import CheckpointCorrupt, verify_checkpoint
from litforge.resilience.resume import find_resume_checkpoint


def checkpoint(step: int) -> dict:
    return {"state_dict": {"w": torch.randn(64, 64)}, "loops": {}, "global_step": step, "epoch": 0}


def flip_a_tensor_bit(path: Path) -> None:
    """Flip one bit inside the largest tensor's bytes: the zip stays valid and ``torch.load`` reads it."""
    with zipfile.ZipFile(path) as archive:
        record = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack(
        "<HH", data[record.header_offset + 26 : record.header_offset + 30]
    )
    start = record.header_offset + 30 + name_length + extra_length
    data[start + record.file_size // 2] ^= 0x04
    path.write_bytes(bytes(data))


def test_written_checkpoints_verify_and_load_anywhere_and_a_flipped_bit_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "step.ckpt"
    saved = checkpoint(3)
    AtomicCheckpointIO().save_checkpoint(saved, path)
    assert verify_checkpoint(path) is True
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], saved["state_dict"]["w"])
    assert torch.load(path, weights_only=True, mmap=True)["global_step"] == 3
    assert zipfile.ZipFile(path).testzip() is None  # still a standard zip (the digest is its comment)

    flip_a_tensor_bit(path)
    assert not torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], saved["state_dict"]["w"])
    with pytest.raises(CheckpointCorrupt, match=r"step\.ckpt: corrupt checkpoint: the bytes of .*/data/"):
        verify_checkpoint(path)
    with pytest.raises(CheckpointCorrupt):
        AtomicCheckpointIO().load_checkpoint(path)

    AtomicCheckpointIO().save_checkpoint(saved, path)
    data = path.read_bytes()
    path.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])  # a flip in the seal itself
    with pytest.raises(CheckpointCorrupt, match="does not match its seal"):
        verify_checkpoint(path)
    with zipfile.ZipFile(path) as archive:  # a flip in a CRC32 of the records' list (central directory)
        name = next(n for n in archive.namelist() if "/data/" in n).encode()
    crc = data.rindex(name) - 46 + 16  # the entry's name is at byte 46, its CRC32 at byte 16
    path.write_bytes(data[:crc] + bytes([data[crc] ^ 1]) + data[crc + 1 :])
    with pytest.raises(CheckpointCorrupt, match="does not match its seal"):
        verify_checkpoint(path)
    path.write_bytes(data[:-50])  # truncated
    with pytest.raises(CheckpointCorrupt, match="end of the file is damaged"):
        verify_checkpoint(path)


def test_records_are_checksummed_even_where_torch_was_told_not_to(tmp_path: Path) -> None:
    torch.serialization.set_crc32_options(False)
    try:
        AtomicCheckpointIO().save_checkpoint(checkpoint(1), tmp_path / "x.ckpt")
    finally:
        torch.serialization.set_crc32_options(True)
    assert verify_checkpoint(tmp_path / "x.ckpt") is True


def test_plain_lightning_checkpoints_load_unverified(tmp_path: Path) -> None:
    path = tmp_path / "plain.ckpt"
    torch.save(checkpoint(1), path)  # what Lightning's own TorchCheckpointIO writes
    assert verify_checkpoint(path) is False
    with pytest.warns(UserWarning, match="plain.ckpt carries no litforge checksum .*loaded unverified"):
        assert AtomicCheckpointIO().load_checkpoint(path)["global_step"] == 1
    assert find_resume_checkpoint(tmp_path) == path


def test_resume_auto_skips_a_checkpoint_whose_bytes_changed(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    io.save_checkpoint(checkpoint(2), tmp_path / "step-00000002.ckpt")
    time.sleep(0.01)
    io.save_checkpoint(checkpoint(4), tmp_path / "step-00000004.ckpt")
    flip_a_tensor_bit(tmp_path / "step-00000004.ckpt")
    with pytest.warns(UserWarning, match=r"skipping unreadable checkpoint: .*step-00000004\.ckpt: corrupt"):
        assert find_resume_checkpoint(tmp_path).name == "step-00000002.ckpt"


def test_test_refuses_a_checkpoint_whose_bytes_changed(cli, trained_digits_run: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes((trained_digits_run / "checkpoints" / "best.ckpt").read_bytes())
    flip_a_tensor_bit(damaged)
    result = cli("test", "--ckpt_path", str(damaged), "--trainer.limit_test_batches", "2")
    assert result.returncode == 2, result.output[-3000:]
    assert "damaged.ckpt: corrupt checkpoint" in result.stderr
    assert "Traceback" not in result.output
