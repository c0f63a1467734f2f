"""Helpers for tests that run ``litforge serve`` in a subprocess on a free loopback port.

(A plain module, not ``conftest``: see cli_helpers.py.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

STARTUP_S = 240  # generous: the CI machine is shared; startup is ~5 s when idle


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    export: Path, log: IO[str], backend: str = "fastapi", *flags: str, cwd: Path | None = None
) -> tuple[subprocess.Popen, str]:
    """``litforge serve`` on a free loopback port, once ``/health`` answers: (process, base URL)."""
    port = free_port()
    exe = Path(sys.executable).with_name("litforge")
    process = subprocess.Popen(
        [str(exe), "serve", str(export), "--port", str(port), "--backend", backend, *flags],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # a process group of its own: a test can signal all its processes at once
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        assert process.poll() is None, log_tail(log)
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"server did not become healthy in {STARTUP_S} s:\n{log_tail(log)}")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(30)


def log_tail(handle: IO[str]) -> str:
    handle.flush()
    handle.seek(0)
    return handle.read()[-4000:]


def predict_once(export: Path, project: Path, inputs: list) -> httpx.Response:
    """Start ``litforge serve`` on ``export`` (from ``project``, its log in ``project/serve.log``), POST one
    ``{"inputs": inputs}`` to ``/predict``, stop it: the answer."""
    with (project / "serve.log").open("w") as log:
        server, base = start_server(export, log, cwd=project)
        try:
            return httpx.post(f"{base}/predict", json={"inputs": inputs}, timeout=60)
        finally:
            stop_server(server)
