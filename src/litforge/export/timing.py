"""Latency (batch 1, median) and throughput (batch 256) of a runner (``litforge export --benchmark``).

Loops are bounded by a repeat count and a time budget, so a slow runtime cannot hang the command.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from litforge.export.formats import Runner


def measure(
    runner: Runner,
    one_row: list[np.ndarray],
    big_batch: list[np.ndarray],
    repeats: int = 300,
    budget_s: float = 3.0,
) -> dict[str, float]:
    """``latency_ms_batch1`` (median of up to ``repeats`` calls) and ``throughput_rows_per_s`` at batch 256."""
    for _ in range(10):
        runner(*one_row)
    latencies = _timed_calls(runner, one_row, repeats, budget_s)
    runner(*big_batch)
    batch_times = _timed_calls(runner, big_batch, max(5, repeats // 10), budget_s)
    rows = len(big_batch[0])
    return {
        "latency_ms_batch1": statistics.median(latencies) * 1e3,
        "latency_ms_batch1_p90": float(np.percentile(latencies, 90)) * 1e3,
        "throughput_rows_per_s": rows / statistics.median(batch_times),
        "calls": len(latencies),
    }


def _timed_calls(runner: Runner, inputs: list[np.ndarray], repeats: int, budget_s: float) -> list[float]:
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < 5 or time.perf_counter() < deadline):
        start = time.perf_counter()
        runner(*inputs)
        times.append(time.perf_counter() - start)
    return times
