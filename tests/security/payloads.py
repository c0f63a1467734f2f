"""Payloads for the security tests: pickled objects that run a shell command if anything unpickles them.

(A plain module, not ``conftest``: see cli_helpers.py.)
"""

from __future__ import annotations

import io
import os

import torch


class RunsShell:
    """Unpickling this runs ``command`` (``os.system``); the tests make it create a marker file."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def torch_saved(obj: object) -> bytes:
    """``obj`` as ``torch.save`` writes it."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
