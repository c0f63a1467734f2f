"""Standard output that outlives its reader: ``litforge fit | head -2`` or ``litforge predict --artifact DIR
--input rows.csv --output - | head``.

Once the reader closes the pipe, every write raised ``BrokenPipeError`` wherever it happened (a progress
line, the model summary, a CSV row), and a fit ended as if stopped by Ctrl+C. The job now goes on: what it
would print goes nowhere, and what it writes to files is written as usual.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


class ClosedPipeSafe:
    """``sys.stdout``'s stand-in: writes and flushes as the stream does until the pipe is closed, then
    points the file descriptor at ``/dev/null`` (so the interpreter's last flush succeeds too) and drops
    what follows. Everything else is the stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._closed = False

    def write(self, text: str) -> int:
        if not self._closed:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop_the_rest()
        return len(text)

    def flush(self) -> None:
        if not self._closed:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop_the_rest()

    def _drop_the_rest(self) -> None:
        self._closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no file descriptor (a test's stream): nothing to flush later
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install() -> None:
    """Put ``ClosedPipeSafe`` in front of ``sys.stdout`` (once)."""
    if not isinstance(sys.stdout, ClosedPipeSafe) and sys.stdout is not None:
        sys.stdout = ClosedPipeSafe(sys.stdout)  # type: ignore[assignment]
