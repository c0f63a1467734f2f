"""benchmarks/gpu_throughput.py runs end to end on a CPU at a tiny shape and records every variant.

Timings are the benchmark's business (never asserted here); this checks that the script the next GPU
session runs works: each variant trains in its own process and lands in the JSON with its figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cli_helpers import REPO

TINY = [
    "--d-model", "32", "--n-layers", "1", "--n-heads", "2", "--seq-len", "16", "--batch", "4",
    "--steps", "6", "--warmup", "2", "--precision", "32-true", "--compile", "off",
    "--checkpoint-every", "2", "--checkpoint-steps", "6",
]  # fmt: skip
EAGER_VARIANTS = [
    "loop eager",
    "litforge eager",
    "lightning eager, no summary",
    "lightning eager",
    "litforge eager, checkpoint every 2",
    "litforge eager, activation checkpointing",
]


def test_every_variant_lands_in_the_json(tmp_path: Path) -> None:
    out = tmp_path / "gpu_throughput.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_throughput.py"), *TINY, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    record = json.loads(out.read_text())
    rows = {row["name"]: row for row in record["rows"]}
    assert list(rows) == EAGER_VARIANTS
    for row in rows.values():
        assert row["ms_per_step"] > 0 and row["wall_s"] > 0 and row["x_loop"] > 0, row
    assert all("perf" in rows[name] for name in EAGER_VARIANTS if name.startswith("litforge"))
    saving = record["checkpointing"]
    assert saving["variant"] == "litforge eager, checkpoint every 2"
    assert (
        saving["saves_in_window"] == 3
    )  # at steps 2, 4, 6: after the window opens at the end of step 2, before it closes at step 8
    assert record["shape"]["d_model"] == 32 and record["environment"]["cuda"] is False
    assert "| loop eager |" in proc.stdout  # the Markdown table
