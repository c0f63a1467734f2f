"""Helpers shared by the test modules: the real console script in a subprocess and the tiny-run flags.

(A plain module, not ``conftest``: several conftest.py files exist, and importing one by that name is
ambiguous.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
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


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> CLIResult:
    """Run the real ``litforge`` console script (from this interpreter's environment) in ``cwd``."""
    exe = Path(sys.executable).with_name("litforge")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "litforge"]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("LITFORGE_DEBUG", None)
    proc = subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CLIResult(proc.returncode, proc.stdout, proc.stderr)


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
