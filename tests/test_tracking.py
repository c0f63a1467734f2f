"""Experiment tracking from config: TensorBoard + CSV by default, W&B offline, MLflow on SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli_helpers import CONFIGS, TINY_TRAINER
from litforge.engine.config_sources import DEFAULT_CONFIG
from litforge.errors import UsageError

DIGITS = ["--config", str(DEFAULT_CONFIG)]


def test_wandb_goes_offline_without_an_api_key_and_records_metrics_and_config(cli, tmp_path):
    pytest.importorskip("wandb")
    # A HOME without ~/.netrc and no WANDB_API_KEY / WANDB_MODE: litforge must choose offline by itself.
    env = {"HOME": str(tmp_path), "WANDB_API_KEY": "", "WANDB_MODE": ""}
    result = cli("fit", *DIGITS, "--config", str(CONFIGS / "loggers" / "wandb.yaml"), *TINY_TRAINER, env=env)
    assert result.returncode == 0, result.output
    runs = list((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb")), result.output
    summary = wandb_summary(runs[0])
    assert summary["state"] == "finished" and summary["project"] == "litforge"
    assert {"val_loss", "val_acc", "train_loss_epoch"} <= set(summary["summary"])
    config = summary["config"]
    assert config["lr"] == 0.002  # the model's hyperparameters ...
    assert (
        config["config"]["model"]["class_path"] == "litforge.models.Classifier"
    )  # ... and the resolved config
    assert config["config"]["trainer"]["max_epochs"] == 2
    # The run folder is still litforge's: config.yaml and the default TensorBoard + CSV metrics.
    run = tmp_path / "runs" / "classifier" / "version_0"
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert "val_loss" in tensorboard_tags(run)


def test_mlflow_records_params_metrics_and_checkpoints_in_sqlite(cli, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    result = cli("fit", *DIGITS, "--config", str(CONFIGS / "loggers" / "mlflow.yaml"), *TINY_TRAINER)
    assert result.returncode == 0, result.output
    assert (tmp_path / "runs" / "mlflow.db").is_file()
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("litforge")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert {"val_loss", "val_acc", "train_loss_epoch"} <= set(run.data.metrics)
    params = run.data.params
    assert params["lr"] == "0.002" and params["config/trainer/max_epochs"] == "2"
    assert params["config/data/class_path"] == "litforge.data.DigitsDataModule"
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "best")]
    assert "best/best.ckpt" in artifacts
    local = Path(client.download_artifacts(run.info.run_id, "best/best.ckpt", str(tmp_path / "dl")))
    assert local.stat().st_size > 1000


def test_default_loggers_are_tensorboard_and_csv_with_the_config(cli, tmp_path):
    result = cli("fit", *DIGITS, *TINY_TRAINER)
    assert result.returncode == 0, result.output
    run = tmp_path / "runs" / "classifier" / "version_0"
    assert {"val_loss", "val_acc"} <= tensorboard_tags(run)
    assert "val_loss" in (run / "metrics.csv").read_text().splitlines()[0]
    assert "class_path: litforge.data.DigitsDataModule" in (run / "hparams.yaml").read_text()
    # sizes linked from the data are the model's own hparams; the config block holds no stale default
    hparams = yaml.safe_load((run / "hparams.yaml").read_text())
    assert hparams["num_classes"] == 10 and "num_classes" not in hparams["config"]["model"]["init_args"]
    assert not (tmp_path / "runs" / "wandb").exists() and not (tmp_path / "runs" / "mlflow.db").exists()


def test_wandb_offline_decision_and_log_model(monkeypatch, tmp_path):
    pytest.importorskip("wandb")
    from litforge.loggers import WandbLogger
    from litforge.loggers.wandb import wandb_should_be_offline

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_should_be_offline()  # no key anywhere
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert not wandb_should_be_offline()  # `wandb login` wrote a key
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_should_be_offline()
    with pytest.warns(UserWarning, match="log_model is turned off"):
        logger = WandbLogger(log_model="all", save_dir=str(tmp_path))
    assert logger._offline and not logger._log_model
    with pytest.raises(UsageError, match="offline=True cannot upload checkpoints"):
        WandbLogger(offline=True, log_model=True, save_dir=str(tmp_path))


def wandb_summary(run_dir: Path) -> dict:
    """State, config and last metrics of an offline W&B run, read from its ``.wandb`` log by wandb's CLI."""
    wandb_cli = Path(sys.executable).with_name("wandb")
    out = subprocess.run(
        [str(wandb_cli), "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def tensorboard_tags(run_dir: Path) -> set[str]:
    """Scalar tags in the run folder's TensorBoard event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert list(run_dir.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return set(events.Tags()["scalars"])
