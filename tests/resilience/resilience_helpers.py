"""Helpers for the resilience tests: bitwise state comparison, tiny CLI runs that can be killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from litforge.resilience import AtomicCheckpointIO
from litforge.resilience.resume import find_resume_checkpoint

HERE = Path(__file__).resolve().parent

# A tiny digits fit: 3 epochs of 6 batches, validation at epoch ends (so last.ckpt is the epoch-end
# checkpoint), checkpoints every 2 steps, deterministic algorithms. Dropout keeps the RNG in play.
# Mid-epoch validation is covered in-process by test_exact_resume.py.
TINY_FIT = [
    "--trainer.max_epochs", "3",
    "--trainer.limit_train_batches", "6",
    "--trainer.limit_val_batches", "2",
    "--trainer.deterministic", "true",
    "--trainer.accelerator", "cpu",
    "--trainer.enable_model_summary", "false",
    "--trainer.enable_progress_bar", "false",
    "--trainer.num_sanity_val_steps", "0",
    "--data.batch_size", "32",
    "--model.hidden_dim", "16",
    "--model.dropout", "0.3",
    "--checkpoint_every_n_steps", "2",
]  # fmt: skip
FINAL_STEP = 18


def bare_trainer(*callbacks: L.Callback, plugins: list[Any] | None = None, **kwargs: Any) -> L.Trainer:
    """An in-process Trainer with nothing but ``callbacks``: no validation, logger, progress bar or summary;
    checkpoints through litforge's ``AtomicCheckpointIO`` unless ``plugins`` say otherwise."""
    settings: dict[str, Any] = {"limit_val_batches": 0, "logger": False}
    return L.Trainer(
        enable_progress_bar=False,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()] if plugins is None else plugins,
        callbacks=list(callbacks),
        **(settings | kwargs),
    )


def litforge_command() -> list[str]:
    exe = Path(sys.executable).with_name("litforge")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "litforge"]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(HERE)) if p)
    env.pop("LITFORGE_DEBUG", None)
    return env


def run_until(
    args: list[str],
    cwd: Path,
    kill_when: Callable[[], bool] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    signal_to_send: int | None = None,
) -> tuple[int | None, str]:
    """Run litforge; when ``kill_when()`` turns true, send ``signal_to_send`` (default SIGKILL).

    Returns the exit code (negative for a signal) and the combined output.
    """
    log = cwd / f"attempt-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*litforge_command(), *args],
            cwd=cwd,
            env=env or subprocess_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Ctrl+C as in a terminal, even where the test runner's workers ignore SIGINT
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + timeout
        sent = False
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"litforge {' '.join(args)} ran past {timeout}s")
            if kill_when is not None and not sent and kill_when():
                if signal_to_send is None:
                    proc.kill()
                else:
                    proc.send_signal(signal_to_send)
                sent = True
            time.sleep(0.02)
    return proc.returncode, log.read_text()


def step_files(checkpoints: Path) -> list[Path]:
    return sorted(checkpoints.glob("step-*.ckpt")) if checkpoints.is_dir() else []


def newest_step(checkpoints: Path) -> int:
    files = step_files(checkpoints)
    return int(files[-1].stem.split("-")[1]) if files else -1


def training_state(checkpoint: Path) -> tuple[Any, Any]:
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return ckpt["state_dict"], ckpt["optimizer_states"]


def final_state(checkpoints: Path, step: int) -> tuple[Any, Any]:
    """Model and optimizer state of the run's end: its newest checkpoint (``last.ckpt`` or ``step-N``)."""
    newest = find_resume_checkpoint(checkpoints)
    assert newest is not None, f"no checkpoint in {checkpoints}"
    assert torch.load(newest, weights_only=True)["global_step"] == step, newest
    return training_state(newest)


def assert_bitwise_equal(a: Any, b: Any, where: str = "") -> None:
    """Tensors equal bit for bit (``torch.equal``), containers recursively, other values with ``==``."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"differs at {where}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"keys differ at {where}: {set(a) ^ set(b)}"
        for key in a:
            assert_bitwise_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"lengths differ at {where}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_bitwise_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"differs at {where}: {a!r} != {b!r}"
