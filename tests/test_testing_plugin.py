"""The pytest plugin: ``tiny_trainer`` and ``run_dir`` fixtures, and ``parametrize_checks`` giving one test
per model and check in a user's own test file (run here through pytester, as a user's project would)."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import PLUGIN_ARGS
from litforge.engine.run_dir import RunDir

TESTS = Path(__file__).resolve().parent

USER_TESTS = """
import broken_modules as broken
from litforge.testing import parametrize_checks

@parametrize_checks(
    {"good": (broken.TinyNet, broken.TinyData), "unused": (broken.UnusedLayer, broken.TinyData)},
    only=["forward", "gradients", "batch_independence"],
)
def test_standard_checks(litforge_check):
    litforge_check()

@parametrize_checks([(broken.TinyNet, broken.TinyData(batch_size=1))], only=["batch_independence"])
def test_skips(litforge_check):
    litforge_check()
"""


def test_parametrize_checks_makes_one_test_per_model_and_check(pytester, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    pytester.makepyfile(test_user_models=USER_TESTS)
    result = pytester.runpytest_inprocess(*PLUGIN_ARGS, "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*test_standard_checks[[]good-forward[]] PASSED*",
            "*test_standard_checks[[]good-gradients[]] PASSED*",
            "*test_standard_checks[[]unused-gradients[]] FAILED*",
            "*test_skips[[]TinyNet-batch_independence[]] SKIPPED*",
            "*AssertionError: 2 of 6 trainable parameters: no gradient*projection.weight, projection.bias*",
        ]
    )


def test_tiny_trainer_fixture_runs_a_fit_in_tmp_path(tiny_trainer, tmp_path):
    import broken_modules as broken

    trainer = tiny_trainer(max_epochs=2)
    assert trainer.default_root_dir == str(tmp_path)
    trainer.fit(broken.TinyNet(), datamodule=broken.TinyData())
    assert trainer.current_epoch == 2 and trainer.global_step == 4  # 2 epochs x 2 batches


def test_run_dir_fixture_is_a_litforge_run_folder(run_dir, tmp_path):
    assert isinstance(run_dir, RunDir)
    assert run_dir.path == tmp_path / "runs" / "test" / "run" and run_dir.path.is_dir()
