"""A ``CheckpointIO`` that never leaves a half-written checkpoint (temp file, fsync, rename) and never loads
a changed one (a SHA-256 of the file inside it, checked on load).

trainer = L.Trainer(plugins=[AtomicCheckpointIO()])   # litforge adds it to every run
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO, Any

from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_warn

from litforge.atomic_files import write_atomically
from litforge.resilience.checkpoint_checksum import save_checksummed, verify_checkpoint
from litforge.resilience.checkpoint_types import allow_plain_data, refuse_unloadable

# Test hook: seconds to wait between writing the temporary file and renaming it, so that tests (and
# benchmarks/kill_resume.py) can kill a process in the middle of a checkpoint write.
WRITE_DELAY_ENV = "LITFORGE_TEST_CHECKPOINT_WRITE_DELAY"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``<name>.tmp-*`` in the target folder, fsyncs it, then ``os.replace``-s it over the target.

    A reader sees either the previous complete file or the new complete file, whatever moment the
    process dies at. The file carries a seal of its records' CRC32s (``checkpoint_checksum``); loading
    checks it first (``CheckpointCorrupt``, exit 2, on a mismatch; a file without one, written by plain
    Lightning, loads with a warning that it is unverified) and uses ``weights_only=True`` unless told
    otherwise. A checkpoint that could not be loaded back that way is refused before it is written
    (``checkpoint_types``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.checked: set[int] = set()  # ids of checkpoints whose content a caller has checked already

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        if id(checkpoint) in self.checked:  # BackgroundCheckpointIO checked it in the training thread
            self.checked.discard(id(checkpoint))
        else:
            refuse_unloadable(checkpoint)

        def sealed(handle: IO[bytes]) -> None:
            save_checksummed(checkpoint, handle)
            if delay := float(os.environ.get(WRITE_DELAY_ENV) or 0):
                time.sleep(delay)

        write_atomically(Path(path), sealed)

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict:
        allow_plain_data()
        if not verify_checkpoint(path):
            rank_zero_warn(
                f"{path} carries no litforge checksum (not written by litforge): loaded unverified"
            )
        return super().load_checkpoint(
            path, map_location=map_location, weights_only=True if weights_only is None else weights_only
        )
