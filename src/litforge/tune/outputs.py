"""What a search leaves in ``--out``: ``best.yaml``, ``trials.csv``, ``plots/`` and a printed summary.

``litforge fit --config runs/tune/<study>/best.yaml`` trains the best trial again (same seed, same value).
Both backends describe their trials as ``TrialRecord``s, so the outputs are the same for Optuna and Ray.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litforge.atomic_files import write_text_atomically
from litforge.tune.fit_config import SearchConfig
from litforge.tune.optuna_factories import import_optuna
from litforge.tune.space import SearchSpace

# A FAIL without a recorded reason: its worker never finished it (see optuna_factories.progress).
WORKER_GONE = "its worker stopped (kill -9, Ctrl+C or a crash); the study runs these parameters again"


@dataclass(frozen=True)
class TrialRecord:
    """One trial, whichever backend ran it."""

    number: int
    state: str  # COMPLETE, PRUNED (stopped early), FAIL, RUNNING, WAITING
    value: float | None
    params: dict[str, Any]
    duration_s: float | None
    intermediate: dict[int, float] = field(default_factory=dict)  # epoch -> metric
    fail_reason: str = ""
    name: str = ""  # the trial folder under <out>/trials/ (defaults to the number)
    epochs_trained: int = 0  # epochs with a metric, as the trial counted them

    @property
    def epochs(self) -> int:
        return max(len(self.intermediate), self.epochs_trained)

    @property
    def folder(self) -> str:
        return self.name or str(self.number)

    @property
    def last_value(self) -> float | None:
        """The metric at the last epoch the trial reported: where a pruned trial stood when it stopped."""
        return self.intermediate[max(self.intermediate)] if self.intermediate else None


def epochs_of(trial: Any) -> int:
    """The epochs an Optuna trial trained: its reports, or the count the trial recorded when it finished."""
    return max(len(trial.intermediate_values), int(trial.user_attrs.get("epochs", 0)))


def records_from_study(study: Any, space: SearchSpace) -> list[TrialRecord]:
    """Optuna trials -> records, with each parameter's value as the fit config takes it."""
    params = {p.key: p for p in space.params}
    return [
        TrialRecord(
            number=t.number,
            state=t.state.name,
            value=t.value if t.state.name == "COMPLETE" else None,
            params={k: params[k].from_optuna(v) if k in params else v for k, v in t.params.items()},
            duration_s=t.duration.total_seconds() if t.duration else None,
            intermediate=dict(t.intermediate_values),
            fail_reason=str(t.user_attrs.get("fail_reason", WORKER_GONE if t.state.name == "FAIL" else "")),
            epochs_trained=epochs_of(t),
        )
        for t in study.get_trials(deepcopy=False)
    ]


def study_from_records(records: list[TrialRecord], space: SearchSpace) -> Any:
    """An in-memory Optuna study holding ``records`` (Ray's trials), so both backends share the plots."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    def distribution(param: Any) -> Any:
        if param.type == "categorical":
            return CategoricalDistribution(list(param.optuna_choices))
        kind = IntDistribution if param.type == "int" else FloatDistribution
        step = param.step if param.step is not None or param.type == "float" else 1
        return kind(param.low, param.high, log=param.log, step=step)

    optuna = import_optuna()
    study = optuna.create_study(direction=space.direction)
    params = {p.key: p for p in space.params}
    distributions = {p.key: distribution(p) for p in space.params}
    for r in sorted(records, key=lambda r: r.number):
        if r.state not in ("COMPLETE", "PRUNED", "FAIL") or any(v is None for v in r.params.values()):
            continue
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState[r.state],
                value=r.value,
                params={k: params[k].to_optuna(v) if k in params else v for k, v in r.params.items()},
                distributions=distributions,
                intermediate_values=r.intermediate,
            )
        )
    return study


def best_record(records: list[TrialRecord], maximize: bool) -> TrialRecord | None:
    complete = [
        r for r in records if r.state == "COMPLETE" and r.value is not None and math.isfinite(r.value)
    ]
    if not complete:
        return None
    return (max if maximize else min)(complete, key=lambda r: r.value)


def write_trials_csv(records: list[TrialRecord], space: SearchSpace, path: Path) -> None:
    """``trials.csv``: number, state, value, one column per parameter, duration, epochs, the metric at the
    last epoch reported (a pruned trial's, where it stopped), fail reason."""
    keys = [p.key for p in space.params]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    last = f"last_{space.metric}"
    writer.writerow(["number", "state", space.metric, *keys, "duration_s", "epochs", last, "fail_reason"])
    for r in sorted(records, key=lambda r: r.number):
        duration = "" if r.duration_s is None else f"{r.duration_s:.2f}"
        value = "" if r.value is None else repr(r.value)
        last_value = "" if r.last_value is None else repr(r.last_value)
        row = [r.number, r.state, value, *(r.params.get(k, "") for k in keys), duration, r.epochs, last_value]
        writer.writerow([*row, r.fail_reason])
    write_text_atomically(path, buffer.getvalue())


def write_best(
    records: list[TrialRecord], space: SearchSpace, fit: SearchConfig, out: Path
) -> TrialRecord | None:
    """``best.yaml`` for the best complete trial (nothing when no trial completed). A fit config that names
    no ``monitor`` gets the search's metric and direction, so a fit of best.yaml keeps best.ckpt by the
    metric the search ranked by, not by ``val_loss``."""
    best = best_record(records, space.maximize)
    if best is not None:
        values = dict(best.params)
        if fit.resolve({}).get("monitor") is None:
            values |= {"monitor": space.metric, "monitor_mode": "max" if space.maximize else "min"}
            print(
                f"litforge: note: best.yaml keeps best.ckpt by {space.metric}, the search's metric (the fit "
                "config names no --monitor)",
                file=sys.stderr,
            )
        fit.dump(values, out / "best.yaml")
    return best


def summary_table(records: list[TrialRecord], space: SearchSpace, best: TrialRecord | None) -> str:
    """A rich table of the trials (best first) and the best trial's values, as text for the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"litforge tune: {len(records)} trials ({space.direction} {space.metric})")
    for column in ("#", "state", space.metric, *(p.key for p in space.params), "epochs", "time"):
        table.add_column(column, justify="right" if column != "state" else "left")
    sign = -1.0 if space.maximize else 1.0
    ranked = sorted(records, key=lambda r: (r.value is None, sign * (r.value or 0.0), r.number))  # best first
    for r in ranked:
        values = [_short(r.params.get(p.key, "")) for p in space.params]
        duration = "" if r.duration_s is None else f"{r.duration_s:.1f}s"
        value = "" if r.value is None else f"{r.value:.5g}"
        if r.value is None and r.state == "PRUNED" and r.last_value is not None:
            value = f"({r.last_value:.5g})"  # where it stood when pruned: not a final value to rank
        table.add_row(str(r.number), r.state, value, *values, str(r.epochs), duration)
    counts = {s: sum(r.state == s for r in records) for s in ("COMPLETE", "PRUNED", "FAIL")}
    console = Console(file=io.StringIO(), width=140, force_terminal=False)
    console.print(table)
    pruned = " (a pruned trial's value in parentheses: its last epoch's)" if counts["PRUNED"] else ""
    console.print(", ".join(f"{n} {s.lower()}" for s, n in counts.items()) + pruned)
    if best is not None:
        console.print(f"best: trial {best.number}, {space.metric}={best.value:.6g}, {best.params}")
    return console.file.getvalue()  # type: ignore[attr-defined]


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


PLOTS = ("optimization_history", "param_importances", "intermediate_values", "parallel_coordinate")


def write_plots(study: Any, out: Path) -> list[Path]:
    """Optuna's plots as HTML (plotly, one shared ``plotly.min.js``, works offline) and PNG (matplotlib).

    A plot that does not apply yet (e.g. importances before two complete trials) is skipped.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    import_optuna()  # quiet logging
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in PLOTS:
            try:
                figure = getattr(vis, f"plot_{name}")(study)
                figure.write_html(str(folder / f"{name}.html"), include_plotlyjs="directory")
                written.append(folder / f"{name}.html")
                axes = getattr(vis_mpl, f"plot_{name}")(study)
                axes = axes.flat[0] if hasattr(axes, "flat") else axes
                axes.figure.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
                plt.close(axes.figure)
                written.append(folder / f"{name}.png")
            except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
                continue
    return written
