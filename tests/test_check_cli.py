"""``litforge check`` through the real console script: the default config passes (exit 0), a broken module
fails (exit 1, the table names the check), third-party modules work by class path, bad input exits 2."""

from __future__ import annotations

import os
from pathlib import Path

TESTS = Path(__file__).resolve().parent
WITH_BROKEN_MODULES = {
    "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
}


def test_default_config_passes_every_check(cli):
    result = cli("check")
    assert result.returncode == 0, result.output
    for name in ("data", "forward", "training_step", "gradients", "optimizer_step", "batch_independence",
                 "determinism", "checkpoint", "overfit", "fast_dev_run", "export"):  # fmt: skip
        assert f"│ {name} " in result.stdout
    assert "FAIL" not in result.stdout and "ERROR" not in result.stdout
    assert "Classifier on DigitsDataModule" in result.stdout
    assert "11 pass in" in result.stdout
    assert "Seed set to" not in result.output  # each check seeds itself, quietly
    assert "3 steps twice from seed 42" in result.stdout  # the packaged default's seed_everything


def test_broken_module_exits_1_and_the_table_names_the_failing_check(cli):
    result = cli(
        "check", "--model", "broken_modules.UnusedLayer", "--data", "broken_modules.TinyData",
        "--skip", "export,overfit", env=WITH_BROKEN_MODULES,
    )  # fmt: skip
    assert result.returncode == 1, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 4}
    assert "FAIL" in rows["gradients"] and "projection.weight" in rows["gradients"]
    assert "PASS" in rows["forward"]
    assert "litforge: error: 2 of 9 checks failed: gradients, optimizer_step" in result.stderr
    assert "Traceback" not in result.output
    # --debug: each failing check's own traceback, from where it raised
    debug = cli(
        "check", "--model", "broken_modules.UnusedLayer", "--data", "broken_modules.TinyData",
        "--only", "gradients", "--debug", env=WITH_BROKEN_MODULES,
    )  # fmt: skip
    assert debug.returncode == 1, debug.output
    assert "--- gradients: FAIL ---" in debug.stderr and 'model_checks.py", line' in debug.stderr


def test_third_party_module_by_class_path(cli):
    result = cli(
        "check",
        "--model", "lightning.pytorch.demos.boring_classes.BoringModel",
        "--data", "lightning.pytorch.demos.boring_classes.BoringDataModule",
        "--skip", "overfit,export",
    )  # fmt: skip
    assert result.returncode == 0, result.output
    assert "BoringModel on BoringDataModule" in result.stdout
    assert "no class labels in the batch" in result.stdout  # data check passes without labels
    assert "SKIP" in result.stdout and "single sample" in result.stdout  # batch of 1: nothing to compare


def test_only_and_overrides_reach_the_model(cli):
    result = cli("check", "--only", "forward", "--model.hidden_dim", "24", "--data.batch_size", "8")
    assert result.returncode == 0, result.output
    assert "(8, 64) float32 -> (8, 10) float32" in result.stdout
    assert "1 pass in" in result.stdout


def test_checks_start_from_the_configs_seed_unless_seed_is_given(cli):
    configured = cli("check", "--only", "determinism", "--seed_everything", "5")
    assert configured.returncode == 0 and "from seed 5:" in configured.stdout, configured.output
    typed = cli("check", "--only", "determinism", "--seed_everything", "5", "--seed", "3")
    assert typed.returncode == 0 and "from seed 3:" in typed.stdout, typed.output


def test_bad_input_exits_2_with_one_line(cli):
    unknown_check = cli("check", "--only", "gradient")
    assert unknown_check.returncode == 2
    assert "unknown check 'gradient'" in unknown_check.stderr and "Traceback" not in unknown_check.stderr
    # nothing selected: an empty table and exit 0 read as "all passed"; an empty --only ran every check
    nothing = cli("check", "--only", "forward", "--skip", "forward")
    assert nothing.returncode == 2 and "no check left to run" in nothing.stderr, nothing.output
    empty = cli("check", "--only", "")
    assert empty.returncode == 2 and "--only: no check named" in empty.stderr, empty.output
    bad_key = cli("check", "--model.no_such_option", "3")
    assert bad_key.returncode == 2 and "no_such_option" in bad_key.stderr
    assert len(bad_key.stderr.strip().splitlines()) == 1
