"""Profilers that write their reports and traces into the run folder's ``profiler/``, not to stdout.

litforge fit --trainer.profiler simple      # profiler/fit-profile.txt: time per Lightning hook
litforge fit --trainer.profiler advanced    # profiler/fit-profile.txt: cProfile per hook
litforge fit --trainer.profiler pytorch     # profiler/*.pt.trace.json (TensorBoard, Perfetto) + op table
litforge fit --config configs/profile.yaml  # PyTorchProfiler with a schedule (see docs/performance.md)

Lightning's ``PyTorchProfiler`` takes its ``torch.profiler`` options (``schedule``, ``profile_memory``,
...) as ``**kwargs``, which a YAML config cannot reach; ``litforge.engine.profiling.PyTorchProfiler`` is the same
profiler with those options as typed arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import profilers
from lightning.pytorch.profilers import AdvancedProfiler, PassThroughProfiler, Profiler, SimpleProfiler

from litforge.errors import UsageError

PROFILERS: dict[str, type[Profiler]] = {
    "simple": SimpleProfiler,
    "advanced": AdvancedProfiler,
    "pytorch": profilers.PyTorchProfiler,
}
REPORT_NAME = "profile"


class Schedule:
    """``torch.profiler.schedule`` as a class, so a YAML config can give ``PyTorchProfiler`` a schedule.

    ``schedule: {class_path: litforge.engine.profiling.Schedule, init_args: {wait: 1, warmup: 1, active: 3}}``
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


class PyTorchProfiler(profilers.PyTorchProfiler):
    """Lightning's ``PyTorchProfiler`` with the ``torch.profiler`` options a config file needs.

    Args:
        dirpath: output folder (default: the run folder's ``profiler/``).
        filename: stem of the report and trace files.
        schedule: which steps to record (``Schedule``); by default Lightning's wait 1, warmup 1, active 3.
        record_shapes: record operator input shapes.
        profile_memory: record tensor memory allocation and release.
        with_stack: record Python source locations (larger traces).
        with_flops: estimate FLOPs of matrix multiplications and convolutions.
        export_to_chrome: write a Chrome/Perfetto trace (``*.pt.trace.json``, TensorBoard reads it too).
        row_limit: rows of the operator table in the report (-1: all).
        sort_by_key: column the operator table is sorted by (e.g. ``self_cpu_time_total``).
        record_module_names: label trace events with the ``nn.Module`` names.
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,
        filename: str | None = None,
        schedule: Schedule | None = None,
        record_shapes: bool = False,
        profile_memory: bool = False,
        with_stack: bool = False,
        with_flops: bool = False,
        export_to_chrome: bool = True,
        row_limit: int = 20,
        sort_by_key: str | None = None,
        record_module_names: bool = True,
    ) -> None:
        options: dict[str, Any] = {"schedule": schedule} if schedule is not None else {}
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            export_to_chrome=export_to_chrome,
            row_limit=row_limit,
            sort_by_key=sort_by_key,
            record_module_names=record_module_names,
            record_shapes=record_shapes,
            profile_memory=profile_memory,
            with_stack=with_stack,
            with_flops=with_flops,
            **options,
        )


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
