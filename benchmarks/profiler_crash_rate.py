"""How often torch's profiler segfaults a profiled ``litforge fit`` (a torch 2.13 bug, docs/performance.md).

python benchmarks/profiler_crash_rate.py                   # 40 fits, 2 at a time
python benchmarks/profiler_crash_rate.py --runs 200 --parallel 2

Each run is the console script in a fresh process and a fresh folder, as a user runs it:
``litforge fit --config configs/profile.yaml`` (a PyTorch profiler with a wait/warmup/active schedule,
record_shapes and profile_memory). Counts the exit codes: 0, -11 (SIGSEGV: the profiler freeing its results
at teardown) and anything else. Writes ``benchmarks/results/profiler_crash_rate.json``.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import environment, print_table, save_results

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "profile.yaml"
CONSOLE_SCRIPT = Path(sys.executable).with_name("litforge")


def one_fit(index: int) -> int:
    """The exit code of one profiled fit in a fresh folder (negative: the signal that ended it)."""
    with tempfile.TemporaryDirectory(prefix=f"profiler-{index}-") as folder:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = [str(CONSOLE_SCRIPT), "fit", "--config", str(CONFIG), "--run", "r"]
        return subprocess.run(command, cwd=folder, env=env, capture_output=True, timeout=600).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()
    with ThreadPoolExecutor(args.parallel) as pool:
        codes = list(pool.map(one_fit, range(args.runs)))
    counts = collections.Counter(codes)
    segfaults = counts.pop(-signal.SIGSEGV, 0)
    ok = counts.pop(0, 0)
    row = {
        "runs": args.runs,
        "parallel": args.parallel,
        "exit 0": ok,
        "SIGSEGV": segfaults,
        "other": sum(counts.values()),
        "segfault rate": segfaults / args.runs,
        "wall s": time.perf_counter() - start,
    }
    print_table([row], list(row))
    if counts:
        print(f"other exit codes: {dict(counts)}")
    path = save_results("profiler_crash_rate", {"environment": environment(), "results": row})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
