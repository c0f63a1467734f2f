"""SIGKILL a digits run N times at random moments; ``--resume auto`` must end bit for bit where an
uninterrupted run ends. Also times checkpointing at the default interval against no checkpoints.

python benchmarks/kill_resume.py                 # 20 kills; table + benchmarks/results/kill_resume.json
python benchmarks/kill_resume.py --kills 5 --max-epochs 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

RESULTS = Path(__file__).resolve().parent / "results" / "kill_resume.json"


def litforge(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "litforge", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def final_state(checkpoints: Path) -> tuple[int, dict, list]:
    """The run's newest checkpoint's step, model state and optimizer state."""
    from litforge.resilience.resume import find_resume_checkpoint

    ckpt = torch.load(find_resume_checkpoint(checkpoints), map_location="cpu", weights_only=True)
    return ckpt["global_step"], ckpt["state_dict"], ckpt["optimizer_states"]


def bitwise_equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(bitwise_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(bitwise_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def newest_step(checkpoints: Path) -> int:
    steps = [int(p.stem.split("-")[1]) for p in checkpoints.glob("step-*.ckpt")]
    return max(steps, default=-1)


def kill_torture(args: list[str], kills: int, seed: int, workdir: Path) -> dict:
    """An uninterrupted reference run, then the same command killed ``kills`` times and re-run.

    Each attempt is killed at a random moment (0-0.5 s) after it wrote its first new checkpoint, so
    every kill lands during training: mid-step, mid-validation or mid-write.
    """
    started = time.perf_counter()
    ref = litforge("fit", *args, "--run", "reference", cwd=workdir)
    if ref.wait() != 0:
        raise SystemExit(f"reference run failed:\n{ref.stderr.read()[-2000:]}")
    duration = time.perf_counter() - started
    reference = final_state(workdir / "runs" / "classifier" / "reference" / "checkpoints")

    rng = random.Random(seed)
    checkpoints = workdir / "runs" / "classifier" / "killed" / "checkpoints"
    command = ["fit", *args, "--run", "killed", "--resume", "auto"]
    landed: list[int] = []
    while len(landed) < kills:
        before = newest_step(checkpoints)
        proc = litforge(*command, cwd=workdir)
        # let each attempt make progress (one new checkpoint), then kill at a random moment after it
        while proc.poll() is None and newest_step(checkpoints) <= before:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        if proc.poll() is not None:
            if proc.returncode != 0:
                raise SystemExit(f"an attempt failed:\n{proc.stderr.read()[-2000:]}")
            break  # the run finished before this kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        landed.append(newest_step(checkpoints))
        print(f"  kill {len(landed)}/{kills}: newest checkpoint at step {landed[-1]}", flush=True)
    final = litforge(*command, cwd=workdir)
    if final.wait() != 0:
        raise SystemExit(f"final attempt failed:\n{final.stderr.read()[-2000:]}")
    result = final_state(checkpoints)
    return {
        "kills_requested": kills,
        "kills_survived": len(landed),
        "newest_checkpoint_step_at_each_kill": landed,
        "uninterrupted_seconds": round(duration, 1),
        "final_step": result[0],
        "reference_step": reference[0],
        "model_bitwise_identical": bitwise_equal(result[1], reference[1]),
        "optimizer_bitwise_identical": bitwise_equal(result[2], reference[2]),
    }


class FitTimer(Callback):
    """Wall time from the start to the end of training (no imports, no data loading)."""

    seconds = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self._start


def checkpoint_overhead(args: list[str], repeats: int, workdir: Path) -> dict:
    """Training time with litforge's default checkpointing vs no checkpoints (medians of interleaved
    runs), and the share of training time spent inside ``Trainer.save_checkpoint`` (robust to load)."""
    from litforge.engine import runtime
    from litforge.engine.api import run_command

    runtime.install()

    saving = {"seconds": 0.0, "count": 0}
    original_save = L.Trainer.save_checkpoint

    def timed_save(self: L.Trainer, *a: object, **k: object) -> None:
        start = time.perf_counter()
        original_save(self, *a, **k)
        saving["seconds"] += time.perf_counter() - start
        saving["count"] += 1

    variants = {"default checkpointing": [], "no checkpoints": ["--trainer.enable_checkpointing", "false"]}
    times: dict[str, list[float]] = {name: [] for name in variants}
    shares: list[float] = []
    saves_per_run = 0
    cwd = Path.cwd()
    os.chdir(workdir)
    L.Trainer.save_checkpoint = timed_save
    try:
        for repeat in range(repeats):
            for name, extra in variants.items():  # interleaved, so machine load hits both alike
                timer = FitTimer()
                saving.update(seconds=0.0, count=0)
                run = f"overhead-{repeat}-{'on' if not extra else 'off'}"
                run_command(["fit", *args, *extra, "--run", run], extra_callbacks=[timer])
                times[name].append(timer.seconds)
                if not extra:
                    shares.append(saving["seconds"] / timer.seconds)
                    saves_per_run = saving["count"]
    finally:
        L.Trainer.save_checkpoint = original_save
        os.chdir(cwd)
    on, off = statistics.median(times["default checkpointing"]), statistics.median(times["no checkpoints"])
    return {
        "repeats": repeats,
        "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "median_seconds_default": round(on, 3),
        "median_seconds_none": round(off, 3),
        "overhead_percent_ab": round(100 * (on - off) / off, 1),
        "checkpoint_saves_per_run": saves_per_run,
        "time_in_saves_percent": round(100 * statistics.median(shares), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs to survive (default 20)")
    parser.add_argument("--max-epochs", type=int, default=10, help="epochs of the digits run (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats for the overhead (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument(
        "--kill-interval", type=int, default=5, help="checkpoint interval (steps) of the killed runs"
    )
    options = parser.parse_args()
    command = " ".join(["python benchmarks/kill_resume.py", *sys.argv[1:]])

    args = [
        "--trainer.max_epochs", str(options.max_epochs),
        "--trainer.callbacks", "[]",  # no early stopping: a fixed amount of training
        "--trainer.deterministic", "true",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ]  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="litforge-kill-resume-"))
    try:
        print(f"kill -9 torture: {options.kills} kills, digits, {options.max_epochs} epochs", flush=True)
        # a dense interval gives the kills many resume points; the overhead uses the default interval
        dense = [*args, "--checkpoint_every_n_steps", str(options.kill_interval)]
        torture = kill_torture(dense, options.kills, options.seed, workdir)
        print("checkpoint overhead ...", flush=True)
        overhead = checkpoint_overhead(args, options.repeats, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "command": command,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min_at_end": round(os.getloadavg()[0], 1),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "kill_resume": torture,
        "checkpoint_overhead": overhead,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    identical = torture["model_bitwise_identical"] and torture["optimizer_bitwise_identical"]
    rows = [
        ("kills survived", f"{torture['kills_survived']}/{torture['kills_requested']}"),
        ("final state bitwise identical", "yes" if identical else "NO"),
        ("final step (killed / reference)", f"{torture['final_step']} / {torture['reference_step']}"),
        ("train time, default checkpointing", f"{overhead['median_seconds_default']:.2f} s"),
        ("train time, no checkpoints", f"{overhead['median_seconds_none']:.2f} s"),
        ("checkpoint overhead (A/B medians)", f"{overhead['overhead_percent_ab']:+.1f} %"),
        ("time inside checkpoint saves", f"{overhead['time_in_saves_percent']:.1f} % of training"),
        ("checkpoint saves per run", str(overhead["checkpoint_saves_per_run"])),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
