"""Where a ``fit`` spent its time: a short table at the end and ``perf.json`` in the run folder, with the
model FLOPs utilisation on a known GPU and the number of graphs ``torch.compile`` built.

litforge fit                      # prints the table; runs/<experiment>/<run>/perf.json
``Trainer(callbacks=[PerfSummary("perf.json")])`` does the same with a plain Lightning ``Trainer``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from litforge._compat.lightning import fit_loop_data, time_calls
from litforge._compat.torch import compiled_graph_count, recompilation_ids
from litforge._compat.torch_compile import uses_torch_compile
from litforge.atomic_files import write_text_atomically
from litforge.callbacks.step_flops import StepFlopCounter, peak_flops
from litforge.predictions.batch_tensors import sample_count
from litforge.resilience.async_checkpoint import background_save_timings


class PerfSummary(Callback):
    """Times every training step on the host, without synchronising with the accelerator.

    A step is split into *data wait* (from the end of the previous step to the start of this one:
    fetching the batch and moving it to the device) and *compute* (``on_train_batch_start`` to
    ``on_train_batch_end``: forward, backward, optimizer). Validation and checkpoint saving are timed on
    their own and never counted as data wait. On a GPU, steady-state host times equal device times
    because the host waits for the device queue; the first steps may look faster than they are.

    MFU (model FLOPs utilisation) = FLOPs per batch / median step time / the device's dense peak, when
    both are known: the FLOPs from the module's ``flops_per_batch`` attribute (Lightning's
    ``ThroughputMonitor`` convention) or counted on the first batch (``StepFlopCounter``), the peak for
    16-bit training on an H100, H200 or A100 (``step_flops.peak_flops``). ``compiled_graphs`` and
    ``recompiles`` count what ``torch.compile`` built during the fit.

    Args:
        path: where to write the JSON summary (default: ``<trainer.log_dir>/perf.json``).
        print_table: print the summary table to stdout at the end of ``fit``.
    """

    def __init__(self, path: str | Path | None = None, print_table: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.print_table = print_table
        self.summary: dict[str, Any] = {}
        self._reset()

    def _reset(self) -> None:
        self._fit_start = 0.0
        self._mark = 0.0  # end of the previous step (or start of the epoch)
        self._step_start = 0.0
        self._paused = 0.0  # validation/checkpoint time since the mark, not data wait
        self._waits: list[float] = []
        self._computes: list[float] = []
        self._samples = 0
        self._samples_known = True
        self._validation = 0.0
        self._validation_start = 0.0
        self._checkpoint = 0.0
        self._checkpoints = 0
        self._undo_timing: Callable[[], None] | None = None
        self._peak_flops: float | None = None
        self._model_flops: int | None = None
        self._flop_counter: StepFlopCounter | None = None
        self._graphs_at_start = 0
        self._global_step_at_start = 0
        self._recompiles_at_start: set[str] = set()

    # -- hooks -----------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset()
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(trainer.strategy.root_device)
        self._undo_timing = time_calls(trainer, "save_checkpoint", self._saved)
        self._graphs_at_start, self._recompiles_at_start = compiled_graph_count(), recompilation_ids()
        self._peak_flops = peak_flops(trainer.strategy.root_device, str(trainer.precision))
        self._model_flops = getattr(pl_module, "flops_per_batch", None)
        if self._peak_flops is not None and self._model_flops is None:
            self._flop_counter = StepFlopCounter()  # counts the first batch
        self._fit_start = self._mark = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._global_step_at_start = trainer.global_step  # restored by now: a resumed run counts its own

    def _saved(self, elapsed: float) -> None:
        self._checkpoint += elapsed
        self._checkpoints += 1
        self._paused += elapsed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._mark, self._paused = time.perf_counter(), 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step_start = time.perf_counter()
        self._waits.append(max(0.0, self._step_start - self._mark - self._paused))
        if self._samples_known:
            # the axis 0 all the batch's tensors share (a detection batch's images: its count of them); a
            # packed batch (a graph's nodes, edges and graphs) or one without tensors has none, and is
            # reported in steps only (Lightning's extract_batch_size would count its first tensor's rows,
            # nodes say, and warn about it at every new size)
            size = sample_count(batch)
            self._samples += size or 0
            self._samples_known = size is not None
        if self._flop_counter is not None and self._flop_counter.flops is None:
            self._flop_counter.start()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._flop_counter is not None:
            self._flop_counter.stop()
        self._mark = time.perf_counter()
        self._paused = 0.0
        self._computes.append(self._mark - self._step_start)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        elapsed = time.perf_counter() - self._validation_start
        self._validation += elapsed
        self._paused += elapsed

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_save(trainer)
        self.summary = self._summarise(trainer, time.perf_counter() - self._fit_start)
        self.summary["compile_requested"] = uses_torch_compile(pl_module)
        if not trainer.is_global_zero:
            return
        path = self.path or Path(trainer.log_dir or trainer.default_root_dir) / "perf.json"
        write_json_atomically(path, self.summary)
        if self.print_table:
            print_summary(self.summary, path)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if self._flop_counter is not None:
            self._flop_counter.stop()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore_save(trainer)

    def _restore_save(self, trainer: L.Trainer) -> None:
        if self._undo_timing is not None:
            self._undo_timing()
            self._undo_timing = None

    # -- summary ---------------------------------------------------------------------------------------
    def _summarise(self, trainer: L.Trainer, fit_seconds: float) -> dict[str, Any]:
        steps = [w + c for w, c in zip(self._waits, self._computes, strict=False)]
        train_seconds = sum(steps)
        device = trainer.strategy.root_device
        loader, _ = fit_loop_data(trainer)
        return {
            "device": str(device),
            "train_loader": type(loader.flattened[0]).__name__
            if loader is not None and loader.flattened
            else None,
            "epochs": trainer.current_epoch,
            "steps": len(steps),  # training batches (training_step calls), timed one by one
            "optimizer_steps": trainer.global_step - self._global_step_at_start,  # fewer when accumulating
            "samples": self._samples if self._samples_known else None,
            "fit_s": fit_seconds,
            "train_s": train_seconds,
            "train_samples_per_s": _ratio(self._samples, train_seconds) if self._samples_known else None,
            "train_steps_per_s": _ratio(len(steps), train_seconds),
            "step_time_p50_ms": _percentile(steps, 50) * 1e3 if steps else None,
            "step_time_p95_ms": _percentile(steps, 95) * 1e3 if steps else None,
            "data_wait_share": _ratio(sum(self._waits[: len(steps)]), train_seconds),
            "validation_s": self._validation,
            "checkpoint_s": self._checkpoint,
            "checkpoints_saved": self._checkpoints,
            **_background_saves(trainer),
            **self._utilisation(_percentile(steps, 50) if steps else None),
            "compiled_graphs": compiled_graph_count() - self._graphs_at_start,
            "recompiles": len(recompilation_ids() - self._recompiles_at_start),
            "peak_rss_mib": peak_rss_mib(),
            "peak_gpu_allocated_mib": (
                torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
            ),
        }

    def _utilisation(self, step_s: float | None) -> dict[str, Any]:
        counted = self._flop_counter.flops if self._flop_counter is not None else None
        flops = self._model_flops if self._model_flops is not None else counted
        source = "model" if self._model_flops is not None else "counted" if counted is not None else None
        known = flops is not None and self._peak_flops is not None and step_s
        return {
            "flops_per_batch": flops,
            "flops_source": source,
            "peak_flops": self._peak_flops,
            "mfu": flops / step_s / self._peak_flops if known else None,  # type: ignore[operator]
        }


def _background_saves(trainer: L.Trainer) -> dict[str, Any]:
    """Periodic checkpoints written in the background: how many, and per save the seconds training waited
    (state copied to host memory) and the seconds the writer thread took (file written, fsynced, renamed)."""
    timings = background_save_timings(trainer)
    count = len(timings)
    return {
        "checkpoints_in_background": count,
        "checkpoint_blocked_s_per_save": sum(t.blocked_s for t in timings) / count if count else None,
        "checkpoint_background_s_per_save": sum(t.background_s for t in timings) / count if count else None,
    }


def print_summary(summary: dict[str, Any], path: Path) -> None:
    """The summary as a two-column rich table on stdout; plain lines when stdout is not a terminal."""
    from rich.console import Console
    from rich.table import Table

    def fmt(value: Any, spec: str, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:{spec}}{unit}"

    table = Table(title=f"performance ({summary['device']}, {summary['train_loader']})", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("train samples/s", fmt(summary["train_samples_per_s"], ",.0f")),
        (
            "train batches/s" if summary["optimizer_steps"] != summary["steps"] else "train steps/s",
            fmt(summary["train_steps_per_s"], ",.1f"),
        ),
        (
            "step time p50 / p95",
            f"{fmt(summary['step_time_p50_ms'], '.2f')} / {fmt(summary['step_time_p95_ms'], '.2f')} ms",
        ),
        ("waiting for data", fmt(summary["data_wait_share"], ".1%")),
        ("time in training steps", fmt(summary["train_s"], ".2f", " s")),
        ("time in validation", fmt(summary["validation_s"], ".2f", " s")),
        (
            "time saving checkpoints",
            fmt(summary["checkpoint_s"], ".2f", f" s ({summary['checkpoints_saved']} saved)"),
        ),
        ("fit wall time", fmt(summary["fit_s"], ".2f", " s")),
        ("peak memory (RSS)", fmt(summary["peak_rss_mib"], ",.0f", " MiB")),
    ]
    if summary["checkpoints_in_background"]:
        rows.append(
            (
                "background saves: blocked / written",
                f"{summary['checkpoint_blocked_s_per_save']:.3f} / "
                f"{summary['checkpoint_background_s_per_save']:.3f} s per save",
            )
        )
    if summary["mfu"] is not None:
        rows.append(("model FLOPs utilisation (MFU)", fmt(summary["mfu"], ".1%")))
    if summary["compiled_graphs"]:
        rows.append(
            ("torch.compile graphs / recompiles", f"{summary['compiled_graphs']} / {summary['recompiles']}")
        )
    elif summary.get("compile_requested") and summary["steps"]:
        rows.append(("torch.compile graphs", "0: compiled nothing, ran eager"))
        print(
            "litforge: note: the model uses torch.compile but no graph was compiled while training, so it ran "
            "eager (dynamo skips some modules, such as nn.LSTM/nn.GRU, and a compiled module that forward "
            "never calls compiles nothing)",
            file=sys.stderr,
        )
    if summary["peak_gpu_allocated_mib"] is not None:
        rows.append(("peak GPU memory allocated", fmt(summary["peak_gpu_allocated_mib"], ",.0f", " MiB")))
    if not sys.stdout.isatty():  # a log file (| tee, a job scheduler): plain aligned lines, no box drawing
        width = max(len(name) for name, _ in rows)
        lines = [f"  {name:<{width}}  {value}" for name, value in rows]
        print(table.title, *lines, f"performance summary: {path}", sep="\n", flush=True)
        return
    for row in rows:
        table.add_row(*row)
    console = Console(file=sys.stdout, width=max(60, min(100, Console().width)))
    console.print(table)
    console.print(f"performance summary: {path}")


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename (never a half-written file)."""
    write_text_atomically(path, json.dumps(data, indent=2) + "\n")


def peak_rss_mib() -> float | None:
    """Peak resident set size of this process in MiB (``None`` where ``resource`` is unavailable)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
