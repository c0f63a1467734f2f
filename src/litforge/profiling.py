"""Profilers that write their reports and traces into the run folder's ``profiler/``, not to stdout.

litforge fit --trainer.profiler simple      # profiler/fit-profile.txt: time per Lightning hook
litforge fit --trainer.profiler advanced    # profiler/fit-profile.txt: cProfile per hook
litforge fit --trainer.profiler pytorch     # profiler/*.pt.trace.json (TensorBoard, Perfetto) + op table
litforge fit --config configs/profile.yaml  # PyTorchProfiler with a schedule (see docs/performance.md)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.profilers import (
    AdvancedProfiler,
    PassThroughProfiler,
    Profiler,
    PyTorchProfiler,
    SimpleProfiler,
)

from litforge.cli.errors import UsageError

PROFILERS: dict[str, type[Profiler]] = {
    "simple": SimpleProfiler,
    "advanced": AdvancedProfiler,
    "pytorch": PyTorchProfiler,
}
REPORT_NAME = "profile"


class Schedule:
    """``torch.profiler.schedule`` as a class, so a YAML config can give ``PyTorchProfiler`` a schedule.

    ``schedule: {class_path: litforge.profiling.Schedule, init_args: {wait: 1, warmup: 1, active: 3}}``
    skips ``skip_first`` steps, then repeats (``repeat`` times, 0 = until the end) a cycle of ``wait``
    idle steps, ``warmup`` steps traced but discarded and ``active`` steps recorded.
    """

    def __init__(self, wait: int = 1, warmup: int = 1, active: int = 3, repeat: int = 1, skip_first: int = 0):
        self.kwargs = {
            "wait": wait,
            "warmup": warmup,
            "active": active,
            "repeat": repeat,
            "skip_first": skip_first,
        }
        self._schedule = torch.profiler.schedule(**self.kwargs)

    def __call__(self, step: int) -> torch.profiler.ProfilerAction:
        return self._schedule(step)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and other.kwargs == self.kwargs

    def __hash__(self) -> int:
        return hash(tuple(self.kwargs.items()))

    def __repr__(self) -> str:
        return f"Schedule({', '.join(f'{k}={v}' for k, v in self.kwargs.items())})"


def run_folder_profiler(profiler: Any, folder: Path) -> Any:
    """Resolve ``--trainer.profiler`` so its output lands in ``folder`` (``<run>/profiler``).

    A name (``simple``, ``advanced``, ``pytorch``) becomes that profiler; a profiler instance without a
    ``dirpath`` gets ``folder`` (and a file name, without which Lightning prints the report to stdout).
    ``None`` and other values pass through unchanged.
    """
    if isinstance(profiler, str):
        kind = PROFILERS.get(profiler.lower())
        if kind is None:
            raise UsageError(
                f'trainer.profiler: unknown profiler "{profiler}"; use one of {", ".join(PROFILERS)} '
                "or a class_path"
            )
        return kind(dirpath=folder, filename=REPORT_NAME)
    if isinstance(profiler, Profiler) and not isinstance(profiler, PassThroughProfiler):
        if profiler.dirpath is None:
            profiler.dirpath = folder
        if not profiler.filename:
            profiler.filename = REPORT_NAME
    return profiler
