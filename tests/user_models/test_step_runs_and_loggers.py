"""Habits of users the packaged default must not get in the way of: a run by steps, a logger added from
litforge's own logger files, a module writing to ``self.logger.experiment``, a trainer value Lightning
refuses once it sees the data."""

from __future__ import annotations

import json

import usermods
import yaml
from user_helpers import QUICK

from litforge.cli.tune import split_fit_flags
from litforge.resilience.resume import trains_further
from litforge.testing import run_checks
from litforge.testing.registry import Check, run_check
from litforge.testing.subject import Subject

MODEL = ["--model", "usermods.LitModel", "--data", "usermods.MyDataModule"]
TINY = ["--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
        "--trainer.enable_model_summary", "false", "--checkpoint_every_n_steps", "0"]  # fmt: skip


def test_max_steps_alone_trains_its_steps_past_the_packaged_max_epochs(project, user_cli):
    """The packaged default's max_epochs 30 capped a --trainer.max_steps 35 run at 30 steps, silently."""
    fit = user_cli("fit", *MODEL, *TINY, "--trainer.max_steps", "35", "--run", "s",
                   "--trainer.accumulate_grad_batches", "2", "--trainer.val_check_interval", "1")  # fmt: skip
    assert fit.returncode == 0, fit.output
    # Lightning counts the validation interval in batches: said, since a run by steps reads steps
    assert "val_check_interval 1 counts training batches, not optimizer steps" in fit.stderr
    finished = json.loads((project / "runs/litmodel/s/finished.json").read_text())
    assert (finished["global_step"], finished["ended_by"]) == (35, "max_steps")


def test_max_epochs_minus_one_trains_a_run_that_ended_at_its_max_epochs_further():
    assert trains_further({"ended_by": "max_epochs", "max_epochs": 30}, -1, None)
    assert trains_further({"ended_by": "max_epochs", "max_epochs": -1}, -1, None) is None


def test_a_logger_file_adds_a_logger_and_changes_nothing_else(project, user_cli):
    """configs/loggers/*.yaml hold trainer.logger alone: stacked on a user's model they used to replace the
    packaged trainer settings (seed 42 -> 0, no early stopping, accelerator auto) without a word."""
    overlay = project / "csv_logger.yaml"
    overlay.write_text(
        "trainer:\n  logger:\n    - class_path: lightning.pytorch.loggers.CSVLogger\n"
        f"      init_args:\n        save_dir: {project / 'extra_logs'}\n"
    )
    fit = user_cli("fit", *MODEL, *QUICK, "-c", str(overlay), "--run", "l")
    assert fit.returncode == 0, fit.output
    assert "sets no trainer" not in fit.stderr
    config = yaml.safe_load((project / "runs/litmodel/l/config.yaml").read_text())
    assert config["seed_everything"] == 42 and config["trainer"]["accelerator"] == "cpu"
    callbacks = [c["class_path"].rsplit(".", 1)[-1] for c in config["trainer"]["callbacks"]]
    assert "EarlyStopping" in callbacks
    assert list((project / "extra_logs").rglob("metrics.csv"))


def test_a_logger_file_on_a_config_without_trainer_keeps_the_note_that_names_it(project, user_cli):
    (project / "model_only.yaml").write_text("model:\n  class_path: usermods.LitModel\n")
    overlay = project / "csv_logger.yaml"
    overlay.write_text(
        f"trainer:\n  logger:\n    - class_path: CSVLogger\n      init_args: {{save_dir: {project}}}\n"
    )
    fit = user_cli("fit", "-c", "model_only.yaml", "-c", str(overlay), "--data", "usermods.MyDataModule",
                   *TINY, "--trainer.max_epochs", "1")  # fmt: skip
    assert fit.returncode == 0, fit.output
    assert "note: model_only.yaml sets no trainer" in fit.stderr


def test_a_trainer_value_lightning_refuses_with_the_data_is_a_usage_error(user_cli):
    fit = user_cli("fit", *MODEL, *TINY, "--trainer.val_check_interval", "500", "--trainer.max_steps", "2")
    assert fit.returncode == 2, fit.output
    assert "trainer settings" in fit.stderr and "val_check_interval" in fit.stderr


def test_tune_passes_the_monitor_flags_on_to_best_yaml():
    flags = ["--monitor", "val_acc", "--monitor_mode", "max", "--trainer.max_epochs", "2"]
    assert split_fit_flags(flags) == flags


def test_check_runs_fast_dev_run_with_lightnings_dummy_logger_as_a_plain_trainer_does():
    """A module writing to self.logger.experiment: fine under fit and Trainer(fast_dev_run=True), it
    failed check's row on a None logger."""
    (result,) = run_checks(usermods.WritesToItsLogger(), usermods.MyDataModule(), only=["fast_dev_run"])
    assert result.status == "PASS", result.detail


def _raises_in_user_code(subject, **options):
    raise KeyError("lr")


def test_a_check_that_errors_names_the_users_line():
    subject = Subject(usermods.LitModel(), usermods.MyDataModule())
    result = run_check(Check("broken", _raises_in_user_code, "raises"), subject)
    assert result.status == "ERROR"
    assert (
        "(at test_step_runs_and_loggers.py:" in result.detail and "in _raises_in_user_code)" in result.detail
    )


def test_root_names_the_folder_of_runs_to_every_command_as_to_export(project, user_cli):
    fit = user_cli("fit", *MODEL, *TINY, "--trainer.max_epochs", "1", "--root", "elsewhere", "--run", "r")
    assert fit.returncode == 0, fit.output
    assert (project / "elsewhere/litmodel/r/checkpoints/last.ckpt").is_file()
    tested = user_cli("test", "--run", "r", "--root", "elsewhere")
    assert tested.returncode == 0, tested.output
    missing = user_cli("test", "--run", "r")
    assert missing.returncode == 2 and "runs of another folder: --root DIR" in missing.stderr


def test_a_resume_that_changes_which_parameters_train_is_refused_in_one_line(user_cli):
    model = ["--model", "usermods.FreezesLayers", "--data", "usermods.MyDataModule", *TINY]
    first = user_cli("fit", *model, "--trainer.max_epochs", "1", "--run", "f")
    assert first.returncode == 0, first.output
    resumed = user_cli("fit", *model, "--trainer.max_epochs", "2", "--run", "f", "--resume", "auto",
                       "--model.freeze_first", "true")  # fmt: skip
    assert resumed.returncode == 2, resumed.output
    assert "a model argument changed which parameters train" in resumed.stderr
    assert "Traceback" not in resumed.stderr


def test_export_of_a_run_with_a_subclass_keeps_the_runs_data(project, user_cli):
    """--model-class of a subclass (one adding an export spec, say) dropped the run's datamodule without a
    word: no real batch for parity, no class names."""
    fit = user_cli("fit", *MODEL, *TINY, "--trainer.max_epochs", "1", "--run", "e")
    assert fit.returncode == 0, fit.output
    ckpt = project / "runs/litmodel/e/checkpoints/last.ckpt"
    exported = user_cli("export", "--ckpt", str(ckpt), "--model-class", "usermods.EpochTrainAccuracy",
                        "--format", "torchscript", "--out", "sub")  # fmt: skip
    assert exported.returncode == 0, exported.output
    assert "is a subclass of the run's usermods.LitModel" in exported.stderr
    record = json.loads((project / "sub/export.json").read_text())
    assert record["source"]["datamodule_class"] == "usermods.MyDataModule"
    assert any(
        case["case"].startswith("real batch") for case in record["formats"]["torchscript"]["parity"]["cases"]
    )


def test_predict_of_a_run_on_several_devices_runs_as_one_process(project, user_cli):
    """Under DDP each process predicted every other sample, and predictions.csv held rank 0's half."""
    fit = user_cli("fit", *MODEL, *TINY, "--trainer.max_epochs", "1", "--run", "p")
    assert fit.returncode == 0, fit.output
    predicted = user_cli("predict", "--run", "p", "--trainer.devices", "2", "--trainer.strategy", "ddp")
    assert predicted.returncode == 0, predicted.output
    assert "predict runs as one process (the config asks devices 2)" in predicted.stderr
    rows = (project / "runs/litmodel/p/predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 48  # every test row once


def test_tune_trials_of_a_ddp_config_train_as_one_process_each(capsys):
    """A DDP config's second process re-ran `litforge tune`, took another trial, and both hung."""
    from types import SimpleNamespace

    from litforge.cli.tune import one_process_flags

    def fit(devices, nodes=1):
        trainer = SimpleNamespace(devices=devices, num_nodes=nodes)
        return SimpleNamespace(resolve=lambda _: SimpleNamespace(trainer=trainer))

    assert one_process_flags(fit(2)) == ["--trainer.devices", "1", "--trainer.num_nodes", "1",
                                         "--trainer.strategy", "auto"]  # fmt: skip
    assert "each trial trains as one process (the config asks devices 2)" in capsys.readouterr().err
    assert one_process_flags(fit("auto")) == one_process_flags(fit([0])) == []


def test_under_torchrun_devices_other_than_its_processes_are_one_line(monkeypatch):
    """--nproc_per_node 2 with the default devices failed in Lightning as 'IndexError: list index out of range'."""
    import pytest

    from litforge.engine.lightning_cli import _refuse_other_devices_than_torchruns
    from litforge.errors import UsageError

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(UsageError, match=r"torchrun started 2 processes .* pass --trainer.devices 2"):
        _refuse_other_devices_than_torchruns({"devices": 1, "accelerator": "cpu"})
    with pytest.raises(UsageError, match=r"pass --trainer\.devices 2"):
        _refuse_other_devices_than_torchruns({"devices": "auto", "accelerator": "cpu"})
    _refuse_other_devices_than_torchruns({"devices": 2, "accelerator": "cpu"})
    _refuse_other_devices_than_torchruns({"devices": "auto", "accelerator": "gpu"})
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    _refuse_other_devices_than_torchruns({"devices": 1, "accelerator": "cpu"})
