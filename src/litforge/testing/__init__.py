"""litforge.testing: the standard sanity checks for any LightningModule, as functions, a pytest plugin and
``litforge check``.

    from litforge.testing import check_gradients, run_checks
    check_gradients(MyModel(), MyDataModule())          # AssertionError naming the parameters without grad
    results = run_checks(MyModel, MyDataModule, skip=["export"])

See docs/testing.md for what each check catches.
"""

from litforge.testing.cases import CheckCase, parametrize_checks
from litforge.testing.data_checks import check_data
from litforge.testing.export_check import check_export
from litforge.testing.harness import tiny_trainer
from litforge.testing.model_checks import (
    check_fast_dev_run,
    check_forward,
    check_gradients,
    check_optimizer_step,
    check_overfit,
    check_training_step,
)
from litforge.testing.registry import CHECKS, Check, CheckResult, run_check, run_checks, select_checks
from litforge.testing.state_checks import check_batch_independence, check_checkpoint, check_determinism
from litforge.testing.subject import SkipCheck, Subject

__all__ = [
    "CHECKS",
    "Check",
    "CheckCase",
    "CheckResult",
    "SkipCheck",
    "Subject",
    "check_batch_independence",
    "check_checkpoint",
    "check_data",
    "check_determinism",
    "check_export",
    "check_fast_dev_run",
    "check_forward",
    "check_gradients",
    "check_optimizer_step",
    "check_overfit",
    "check_training_step",
    "parametrize_checks",
    "run_check",
    "run_checks",
    "select_checks",
    "tiny_trainer",
]
