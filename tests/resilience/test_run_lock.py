"""One process per run folder: a second holder is refused at once, naming the first; a lock left by a
process killed with ``kill -9`` never blocks; the ranks of a distributed job do not take it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from resilience_helpers import subprocess_env

from litforge.errors import UsageError
from litforge.resilience import run_lock
from litforge.resilience.run_lock import RunInUse, RunLock, is_run_owner

# The holder loads run_lock.py alone (not the litforge.resilience package, which imports Lightning: seconds).
HOLD = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("run_lock", sys.argv[2])
run_lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_lock)
lock = run_lock.RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def hold(run: Path) -> subprocess.Popen:
    """Another process holding ``run``'s lock (returns once it does)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run), run_lock.__file__],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_process_is_refused_naming_the_holder_until_the_holder_is_killed(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "classifier" / "dup"
    holder = hold(run)
    try:
        with pytest.raises(
            RunInUse, match=rf"run {run} is in use by another process \(pid {holder.pid}\)"
        ) as info:
            RunLock(run).acquire()
        assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9: no cleanup, the .lock file stays
        holder.wait()
    assert (run / ".lock").is_file()
    with RunLock(run) as lock:  # the stale lock does not block
        assert lock.held and (run / ".lock").read_text().strip() == str(os.getpid())
    assert not lock.held
    RunLock(run).acquire().release()  # released: free again


# The worker prints "worker" once it runs (past os.fork's after-fork handlers); the holder prints its pid.
HOLD_WITH_A_WORKER = HOLD.replace(
    'print("locked", flush=True)',
    "import os\nworker = os.fork()\n"  # one os.write per line: whole lines on the shared pipe
    'if worker == 0:\n    os.write(1, b"worker\\n")\n    time.sleep(120)\n'
    'os.write(1, f"{worker}\\n".encode())',
)


def test_a_forked_worker_outliving_a_killed_holder_does_not_keep_the_lock(tmp_path: Path) -> None:
    """A DataLoader worker (forked while the fit held the lock) lives on for seconds after a kill -9 of
    the fit: its copy of the descriptor kept the flock, and the --resume auto typed next was refused."""
    run = tmp_path / "runs" / "classifier" / "workers"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WITH_A_WORKER, str(run), run_lock.__file__],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    assert holder.stdout is not None
    lines = [holder.stdout.readline().strip() for _ in range(2)]  # in either order
    assert "worker" in lines, lines
    worker = int(next(line for line in lines if line != "worker"))
    try:
        with pytest.raises(RunInUse):
            RunLock(run).acquire()  # the holder still runs
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        os.kill(worker, 0)  # the worker is still alive ...
        RunLock(run).acquire().release()  # ... and the lock is free
    finally:
        os.kill(worker, signal.SIGKILL)


def test_only_the_process_that_owns_the_run_takes_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert is_run_owner()  # a plain process
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("RANK", "0")
    assert is_run_owner()  # rank 0 of srun/torchrun
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank that Lightning's DDP launcher started
    assert not is_run_owner()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "4")  # local rank 0 of a second node
    assert not is_run_owner()


def test_litforge_fit_is_refused_while_another_process_holds_the_run(tmp_path: Path) -> None:
    from cli_helpers import TINY_TRAINER, run_cli

    run = tmp_path / "runs" / "classifier" / "dup"
    holder = hold(run)
    writing = run / "checkpoints" / ".step-00000030.ckpt.tmp-1-abcd"  # the holder's write in progress
    writing.parent.mkdir()
    writing.write_bytes(b"being written")
    try:
        refused = run_cli("fit", *TINY_TRAINER, "--run", "dup", "--resume", "auto", cwd=tmp_path)
        assert refused.returncode == 2, refused.output
        assert f"in use by another process (pid {holder.pid})" in refused.stderr
        assert "resuming" not in refused.output and "starting fresh" not in refused.output  # refused first
        assert (run / run_lock.LOCK_FILE).is_file() and writing.exists()  # the holder's folder is left alone
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    after_kill = run_cli("fit", *TINY_TRAINER, "--run", "dup", "--resume", "auto", cwd=tmp_path)
    assert after_kill.returncode == 0, after_kill.output
    assert (run / "finished.json").is_file() and not writing.exists()  # the killed write is cleaned up
