"""Pruning at a list of rungs: ``litforge tune --pruner rungs --rungs 1:4,6:3``.

A rung ``E:K`` is a number of epochs done and a share kept: after ``E`` epochs a trial goes on only if its
metric is among the best ``1/K`` (at least the best one) of all trials that reached ``E`` epochs so far,
the rule of Optuna's asynchronous successive halving. Unlike successive halving, whose rungs go on at
``first * factor**k`` up to the last epoch, the list ends where you say: after its last rung, trials are
no longer compared and run to the end. See docs/tune.md (Pruning) for why that matters on noisy metrics.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from litforge.errors import UsageError


@dataclass(frozen=True)
class Rung:
    """After ``epochs`` epochs done, keep the best ``1/keep_one_in`` of the trials that got there."""

    epochs: int
    keep_one_in: int

    def __str__(self) -> str:
        return f"{self.epochs}:{self.keep_one_in}"


def parse_rungs(text: object, where: str = "--rungs") -> tuple[Rung, ...]:
    """``"1:4,6:3"`` -> (Rung(1, 4), Rung(6, 3)); anything else raises ``UsageError`` naming ``where``."""
    if not isinstance(text, str):  # YAML reads an unquoted 1:4 as the base-60 number 64
        raise UsageError(f'{where} {text!r}: write the rungs as a quoted string, e.g. "1:4,6:3"')
    rungs = []
    for part in text.split(","):
        epochs, _, keep = part.strip().partition(":")
        try:
            rung = Rung(int(epochs), int(keep))
        except ValueError:
            rung = None
        if rung is None or rung.epochs < 1 or rung.keep_one_in < 2:
            raise UsageError(
                f"{where} {text}: expected EPOCHS:K pairs (after EPOCHS epochs keep the best 1/K), "
                "EPOCHS >= 1 and K >= 2, e.g. 1:4,6:3"
            )
        rungs.append(rung)
    if any(a.epochs >= b.epochs for a, b in itertools.pairwise(rungs)):
        raise UsageError(f"{where} {text}: the rungs' epochs must increase, e.g. 1:4,6:3")
    return tuple(rungs)


def format_rungs(rungs: Iterable[Rung]) -> str:
    return ",".join(map(str, rungs))


def value_at(intermediate_values: dict[int, float], epochs: int) -> float | None:
    """A trial's metric at a rung: its first report at or after ``epochs`` epochs (None: not there yet).

    Validation every epoch reports at each epoch; with ``check_val_every_n_epoch`` the next report counts.
    """
    steps = [s for s in intermediate_values if s >= epochs]
    return intermediate_values[min(steps)] if steps else None


def keeps(value: float, reached: list[float], keep_one_in: int, maximize: bool) -> bool:
    """Whether ``value`` is among the best ``len(reached) // keep_one_in`` (at least one) of ``reached``,
    which includes ``value``; ties go on."""
    ranked = sorted(reached, reverse=maximize)
    bar = ranked[max(len(ranked) // keep_one_in, 1) - 1]
    return value >= bar if maximize else value <= bar


def make_rung_pruner(rungs: tuple[Rung, ...]) -> Any:
    """An Optuna pruner for ``rungs`` (steps are epochs done, as litforge reports them)."""
    import optuna

    class RungPruner(optuna.pruners.BasePruner):
        def __init__(self, rungs: tuple[Rung, ...]) -> None:
            self.rungs = rungs

        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            step = trial.last_step
            if step is None:
                return False
            value = trial.intermediate_values[step]
            if math.isnan(value):
                return True
            before = [s for s in trial.intermediate_values if s < step]
            # The rungs this report is the first one at or after (several when validation is sparse).
            crossed = [r for r in self.rungs if r.epochs <= step and all(s < r.epochs for s in before)]
            if not crossed:
                return False
            others = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
            maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
            for rung in crossed:
                reached = [value_at(t.intermediate_values, rung.epochs) for t in others]
                finite = [v for v in reached if v is not None and math.isfinite(v)]
                if not keeps(value, [*finite, value], rung.keep_one_in, maximize):
                    return True
            return False

        def __repr__(self) -> str:
            return f"RungPruner({format_rungs(self.rungs)})"

    return RungPruner(rungs)
