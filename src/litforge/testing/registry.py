"""The named checks, in the order ``litforge check`` runs them, and the runner that turns each into a
PASS / FAIL / SKIP / ERROR result with its time."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from litforge.engine.failures import raised_at
from litforge.testing.data_checks import check_data
from litforge.testing.export_check import check_export
from litforge.testing.harness import quiet
from litforge.testing.model_checks import (
    check_fast_dev_run,
    check_forward,
    check_gradients,
    check_optimizer_step,
    check_overfit,
    check_training_step,
)
from litforge.testing.state_checks import check_batch_independence, check_checkpoint, check_determinism
from litforge.testing.subject import DataLike, ModelLike, SkipCheck, Subject, as_subject, first_line

Status = Literal["PASS", "FAIL", "SKIP", "ERROR"]


@dataclass(frozen=True)
class Check:
    """A named check: ``run(subject, **options)`` returns a detail line or raises ``AssertionError``."""

    name: str
    run: Callable[..., str]
    catches: str


CHECKS: dict[str, Check] = {
    check.name: check
    for check in (
        Check(
            "data",
            check_data,
            "NaN/inf inputs, labels outside [0, num_classes), batches changing shape or dtype",
        ),
        Check("forward", check_forward, "wrong output shape/dtype, NaN outputs, a stale example_input_array"),
        Check("training_step", check_training_step, "a non-scalar, NaN or detached loss"),
        Check(
            "gradients", check_gradients, "layers that never get a gradient or are missing from the optimizer"
        ),
        Check("optimizer_step", check_optimizer_step, "parameters an optimizer step does not update"),
        Check("batch_independence", check_batch_independence, "samples leaking into each other in eval mode"),
        Check("determinism", check_determinism, "randomness that seed_everything does not control"),
        Check("checkpoint", check_checkpoint, "hparams not saved, state outside state_dict"),
        Check("overfit", check_overfit, "a model or loss that cannot learn even one batch"),
        Check("fast_dev_run", check_fast_dev_run, "crashes in validation_step/test_step and the real loops"),
        Check("export", check_export, "forward code that does not export to ONNX or exports wrong"),
    )
}


@dataclass
class CheckResult:
    """One check's outcome: ``status``, seconds taken and the detail (or the failure message)."""

    name: str
    status: Status
    seconds: float
    detail: str
    error: BaseException | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status in ("PASS", "SKIP")


def select_checks(only: Iterable[str] | None = None, skip: Iterable[str] | None = None) -> list[Check]:
    """The checks named in ``only`` (all by default) minus those in ``skip``, in the standard order."""
    names = [*(only or []), *(skip or [])]
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], CHECKS, n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise KeyError(f"unknown check {', '.join(map(repr, unknown))}{hint}; known: {', '.join(CHECKS)}")
    wanted = set(only or CHECKS) - set(skip or [])
    return [check for name, check in CHECKS.items() if name in wanted]


def run_check(check: Check, subject: Subject, **options: Any) -> CheckResult:
    """Run one check (it starts from ``seed_everything(subject.seed)``); never raises (except KeyboardInterrupt)."""
    start = time.perf_counter()
    status: Status
    error: BaseException | None = None
    try:
        with quiet():
            detail = check.run(subject, **options)
        status = "PASS"
    except SkipCheck as skip:
        status, detail = "SKIP", str(skip)
    except AssertionError as failure:
        status, detail, error = "FAIL", str(failure), failure
    except Exception as crash:
        where = raised_at(crash)
        at = f" (at {where})" if where else ""
        status, detail, error = "ERROR", f"{type(crash).__name__}: {first_line(crash)}{at}", crash
    return CheckResult(check.name, status, time.perf_counter() - start, detail, error)


def run_checks(
    model: ModelLike | Subject,
    data: DataLike = None,
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> list[CheckResult]:
    """Run the selected checks on ``model`` and ``data``; ``options`` maps a check name to its keyword
    arguments, e.g. ``{"overfit": {"steps": 300, "threshold": 0.05}}``."""
    subject = as_subject(model, data)
    return [run_check(c, subject, **(options or {}).get(c.name, {})) for c in select_checks(only, skip)]
