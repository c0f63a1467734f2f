"""Healthy user-style modules (tests/user_models/usermods.py) pass every standard check, or skip it with a
reason, whatever order the checks run in: through ``litforge.testing`` and through ``litforge check`` on a
module file in the working directory."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pytest
import torch
import usermods
from torch.utils.data import DataLoader

from litforge.testing import Check, Subject, run_check, select_checks

# (model, data) pairs: every check passes or skips with a reason on each.
ZOO = {
    "seed_classifier": (usermods.LitModel, usermods.MyDataModule),
    "regression_1d": (usermods.Regressor, usermods.RegressionData),
    "dict_batch": (usermods.DictBatchModel, usermods.DictData),
    "manual_two_optimizers": (usermods.GAN, usermods.MyDataModule),
    "no_validation": (usermods.NoValidationModel, usermods.TrainOnlyData),
    "no_val_loss": (usermods.OtherMetricsModel, usermods.MyDataModule),
    "compiled_submodule": (usermods.CompiledModel, usermods.MyDataModule),
    "layers_in_configure_model": (usermods.LayersInConfigureModel, usermods.MyDataModule),
    "plateau_on_val_loss": (usermods.PlateauModel, usermods.MyDataModule),  # the checks run no validation
    "dict_of_heads": (usermods.MultiTask, usermods.MyDataModule),
    "token_sequences": (usermods.TokenClassifier, usermods.TokenData),
    # forward(tokens, lengths) on (tokens, lengths, y) batches: both inputs reach forward, y is the label
    "tokens_and_lengths": (usermods.LengthsClassifier, partial(usermods.TokenData, with_lengths=True)),
}

# The only check a healthy zoo module may skip, and why.
EXPECTED_SKIPS = {("manual_two_optimizers", "overfit"): "training_step returns no loss to follow"}


def _outcomes(name: str, checks: list[Check]) -> dict[str, tuple[str, str]]:
    """``check -> (status, detail)``, the checks run in this order on one Subject (as ``litforge check``
    does: they share its batch)."""
    subject = Subject(*ZOO[name])
    return {
        check.name: (result.status, result.detail)
        for check in checks
        for result in [run_check(check, subject)]
    }


@pytest.mark.parametrize("name", list(ZOO))
def test_healthy_module_passes_every_check_in_any_order(name):
    checks = select_checks()
    in_order = _outcomes(name, checks)
    for check, (status, detail) in in_order.items():
        skip_reason = EXPECTED_SKIPS.get((name, check))
        expected = "SKIP" if skip_reason else "PASS"
        assert status == expected, f"{name} {check}: {status} {detail}"
        assert skip_reason is None or skip_reason in detail
    # Same statuses and details (losses, shapes, diffs) in reverse order, and with each check run first
    # (the first check draws the batch: it must not shift the random state a later seeded run starts from).
    assert _outcomes(name, checks[::-1]) == in_order
    assert {check.name: _outcomes(name, [check])[check.name] for check in checks} == in_order


def test_dict_batch_without_matching_forward_parameters_takes_its_one_input_or_skips_with_what_to_do():
    class Renamed(usermods.DictBatchModel):
        def forward(self, inputs):  # no batch key called "inputs"
            return super().forward(inputs)

    class WeightedData(usermods.DictData):  # a second float tensor: which one is the input cannot be told
        def train_dataloader(self):
            def collate(samples):
                batch = usermods.collate_dicts(samples)
                return {**batch, "weight": torch.ones(len(samples))}

            return DataLoader(self.train_set, batch_size=self.batch_size, collate_fn=collate)

    forward = select_checks(only=["forward"])[0]
    # the batch's one float tensor is the input (the integer "target" is its labels)
    result = run_check(forward, Subject(Renamed, usermods.DictData))
    assert result.status == "PASS" and result.detail == "(16, 16) float32 -> (16, 3) float32", result.detail
    result = run_check(forward, Subject(Renamed, WeightedData))
    assert result.status == "SKIP"
    assert "name forward's parameters after the batch's keys" in result.detail


def _module_file(tmp_path: Path) -> Path:
    """The zoo as a user's own file in the working directory: ``--model usermods.LitModel``."""
    shutil.copy(Path(usermods.__file__), tmp_path / "usermods.py")
    return tmp_path


def _rows(stdout: str) -> dict[str, str]:
    return {line.split("│")[1].strip(): line for line in stdout.splitlines() if line.count("│") >= 4}


def test_cli_checks_the_seed_classifier_from_a_file_in_the_working_directory(cli, tmp_path):
    # The class defaults stated on the command line: until the engine stops applying the packaged
    # default config's model/data init_args to a user's class, its lr 0.002, hidden_dim 128, dropout 0.1
    # and batch_size 64 would replace LitModel's and MyDataModule's own.
    args = [
        "check", "--model", "usermods.LitModel", "--data", "usermods.MyDataModule",
        "--model.hidden_dim", "256", "--model.lr", "0.001", "--model.dropout", "0.1", "--data.batch_size", "32",
    ]  # fmt: skip
    cwd = _module_file(tmp_path)
    every_check = cli(*args, cwd=cwd)
    assert every_check.returncode == 0, every_check.output
    assert "LitModel on MyDataModule" in every_check.stdout
    assert "(32, 16) float32 -> (32, 3) float32" in _rows(every_check.stdout)["forward"]
    assert "11 pass in" in every_check.stdout
    determinism_first = cli(*args, "--only", "determinism", cwd=cwd)  # it draws the shuffled batch itself
    assert determinism_first.returncode == 0, determinism_first.output
    assert "PASS" in _rows(determinism_first.stdout)["determinism"]


def test_cli_checks_a_1d_regression_and_a_manual_optimization_gan(cli, tmp_path):
    cwd = _module_file(tmp_path)
    regression = cli(
        "check", "--model", "usermods.Regressor", "--data", "usermods.RegressionData",
        "--data.batch_size", "16", "--skip", "export", cwd=cwd,  # batch_size stated: see the test above
    )  # fmt: skip
    assert regression.returncode == 0, regression.output
    assert "(16, 8) float32 -> (16,) float32" in _rows(regression.stdout)["forward"]
    assert "10 pass in" in regression.stdout
    gan = cli(
        "check", "--model", "usermods.GAN", "--data", "usermods.MyDataModule",
        "--model.lr", "0.0001", "--data.batch_size", "32", "--skip", "export", cwd=cwd,
    )  # fmt: skip
    assert gan.returncode == 0, gan.output
    assert "SKIP" in _rows(gan.stdout)["overfit"] and "9 pass, 1 skip in" in gan.stdout


def test_cli_checks_an_injected_network_rebuilt_from_its_config(cli, tmp_path):
    injected = cli(
        "check", "--model", "usermods.InjectedNetModel", "--model.net", "usermods.MLP",
        "--data", "usermods.MyDataModule", "--skip", "export", cwd=_module_file(tmp_path),
    )  # fmt: skip
    assert injected.returncode == 0, injected.output
    assert "load_from_checkpoint alone lacks net" in _rows(injected.stdout)["checkpoint"]
    assert "10 pass in" in injected.stdout
