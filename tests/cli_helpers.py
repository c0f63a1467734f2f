"""Helpers shared by the test modules: ``run_cli`` (``litforge <args>`` in a process of its own: forked from a
fork server that has imported Lightning once, or the real console script in a fresh interpreter) and the
tiny-run flags. ``LITFORGE_TESTS_FRESH_PROCESSES=1 make test`` runs every command the second way.

(A plain module, not ``conftest``: several conftest.py files exist, and importing one by that name is
ambiguous.)
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"

# litforge's pytest plugin (fixtures tiny_trainer, run_dir) loads through its pytest11 entry point once
# litforge is installed; a checkout on PYTHONPATH without that metadata loads it from conftest (never
# both: pytest refuses a plugin registered twice). PLUGIN_ARGS does the same for pytester runs.
_PLUGIN = "litforge.testing.plugin"
PLUGIN_INSTALLED = any(ep.value == _PLUGIN for ep in entry_points(group="pytest11"))
PLUGIN_ARGS = [] if PLUGIN_INSTALLED else ["-p", _PLUGIN]

# Flags that shrink any fit to seconds: a few batches, CPU, no progress bar noise.
TINY_TRAINER = [
    "--trainer.max_epochs", "2",
    "--trainer.limit_train_batches", "5",
    "--trainer.limit_val_batches", "2",
    "--trainer.limit_test_batches", "2",
    "--trainer.limit_predict_batches", "2",
    "--trainer.accelerator", "cpu",
    "--trainer.enable_model_summary", "false",
]  # fmt: skip


@dataclass
class CLIResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    fresh_process: bool = False,
) -> CLIResult:
    """Run ``litforge <args>`` in ``cwd``: a process forked from this worker's fork server for its
    environment (``cli_forkserver``: the console script without its seconds of imports), or, with
    ``fresh_process`` or ``LITFORGE_TESTS_FRESH_PROCESSES=1``, the real console script in a subprocess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("LITFORGE_DEBUG", None)
    full_env.pop("PYTEST_CURRENT_TEST", None)  # pytest's per-test name: no server could be shared
    if not (fresh_process or os.environ.get("LITFORGE_TESTS_FRESH_PROCESSES")):
        server = _ForkServer.for_env(full_env)
        if server is not None:
            return server.run(list(args), cwd, timeout)
    proc = subprocess.run(
        [*CONSOLE_SCRIPT, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CLIResult(proc.returncode, proc.stdout, proc.stderr)


_EXE = Path(sys.executable).with_name("litforge")
CONSOLE_SCRIPT = [str(_EXE)] if _EXE.exists() else [sys.executable, "-m", "litforge"]


class _ForkServer:
    """One ``cli_forkserver`` process per environment (a few at most), used by one caller at a time;
    ``for_env`` gives ``None`` while it is busy (a test running commands side by side gets subprocesses)."""

    _servers: dict[frozenset, _ForkServer] = {}
    _KEEP = 3

    def __init__(self, env: dict[str, str]) -> None:
        self._lock = threading.Lock()
        self._scratch = Path(tempfile.mkdtemp(prefix="litforge-forkserver-"))
        requests_read, self._requests = os.pipe()
        self._replies, replies_write = os.pipe()
        self._log = (self._scratch / "startup.log").open("w+")
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("cli_forkserver.py")), str(requests_read), str(replies_write)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            pass_fds=(requests_read, replies_write),
        )  # fmt: skip
        os.close(requests_read)
        os.close(replies_write)
        self._replies_file = os.fdopen(self._replies, "rb", buffering=0)
        if not self._reply(timeout=300).get("ready"):
            raise RuntimeError(f"the CLI fork server did not start: {self._startup_output()}")
        # what its imports printed, a real run prints too
        self._startup = self._startup_output()

    def _startup_output(self) -> str:
        self._log.seek(0)
        return self._log.read()

    @classmethod
    def for_env(cls, env: dict[str, str]) -> _ForkServer | None:
        key = frozenset(env.items())
        server = cls._servers.pop(key, None)
        if server is not None and server._process.poll() is not None:
            server.close()  # died (killed by a test's timeout): its scratch folder goes too
            server = None
        if server is None:
            while len(cls._servers) >= cls._KEEP:  # the least recently used goes
                cls._servers.pop(next(iter(cls._servers))).close()
            server = cls(env)
        cls._servers[key] = server  # most recently used last
        return server if not server._lock.locked() else None

    def _reply(self, timeout: float | None) -> dict:
        ready, _, _ = select.select([self._replies_file], [], [], timeout)
        if not ready:
            raise subprocess.TimeoutExpired("litforge fork server", timeout or 0)
        line = self._replies_file.readline()
        if not line:
            raise RuntimeError(f"the CLI fork server died: {self._startup_output()}")
        return json.loads(line)

    def run(self, args: list[str], cwd: Path, timeout: float) -> CLIResult:
        with self._lock:
            stdout, stderr = self._scratch / "stdout", self._scratch / "stderr"
            stdout.write_bytes(b"")
            stderr.write_bytes(b"")
            request = {"args": args, "cwd": str(cwd), "stdout": str(stdout), "stderr": str(stderr)}
            os.write(self._requests, (json.dumps({**request, "argv0": CONSOLE_SCRIPT[0]}) + "\n").encode())
            pid = self._reply(timeout=60)["pid"]
            try:
                returncode = self._reply(timeout)["returncode"]
            except subprocess.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)
                self._reply(timeout=60)
                raise subprocess.TimeoutExpired(["litforge", *args], timeout) from None
            read = partial(Path.read_text, errors="replace")
            return CLIResult(returncode, read(stdout), self._startup + read(stderr))

    def close(self) -> None:
        os.close(self._requests)  # the server's read ends: it exits
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._replies_file.close()
        self._log.close()
        shutil.rmtree(self._scratch, ignore_errors=True)


@atexit.register
def _close_fork_servers() -> None:
    for server in _ForkServer._servers.values():
        server.close()


def processes_tagged(tag: str) -> list[int]:
    """PIDs of live processes whose environment holds ``LITFORGE_TEST_TAG=<tag>`` (Linux ``/proc``)."""
    needle = f"LITFORGE_TEST_TAG={tag}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            zombie = "zombie" in (entry / "status").read_text()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ.split(b"\0") and not zombie:
            pids.append(int(entry.name))
    return pids


def wait_until_gone(tag: str, timeout: float = 30) -> list[int]:
    """Wait up to ``timeout`` s for every process tagged ``tag`` to end; return those still alive."""
    deadline = time.monotonic() + timeout
    while (alive := processes_tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return alive
