"""``litforge tune --backend ray`` on a local Ray instance: trials run, ASHA stops the bad ones early."""

from __future__ import annotations

import csv

import pytest
from tune_helpers import TINY_TRIAL, TUNE_TIMEOUT, raising_line

from cli_helpers import CONFIGS

pytest.importorskip("ray.tune", reason="pip install 'litforge[ray]'")


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~1 min on an idle one
@pytest.mark.parametrize("metric", ["val_loss", "train_loss_epoch"])
def test_ray_backend_with_asha_writes_the_same_outputs(cli, tmp_path, write_space, metric) -> None:
    # Grid order, one trial at a time: two good learning rates set the bar at ASHA's first rung,
    # then the tiny learning rate falls below it and is stopped after its grace epoch.
    # train_loss_epoch: no validation loop, so trials are reported at training epoch ends.
    choices = [1.0e-2, 5.0e-3, 1.0e-7]
    path = write_space(
        {"metric": metric, "params": {"model.lr": {"type": "categorical", "choices": choices}}}
    )
    out = tmp_path / "search"
    args = [
        "--space",
        str(path),
        "--backend",
        "ray",
        "--out",
        str(out),
        "--sampler",
        "grid",
        "--workers",
        "1",
    ]
    args += ["--grace-period", "1", "--reduction-factor", "2", "--cpus-per-trial", "1"]
    trial = [a for a in TINY_TRIAL if a != "--no-plots"]
    if metric == "train_loss_epoch":
        trial += ["--trainer.limit_val_batches", "0"]
    result = cli("tune", *args, *trial, timeout=TUNE_TIMEOUT)
    assert result.returncode == 0, result.output[-3000:]

    with (out / "trials.csv").open() as handle:
        rows = {float(r["model.lr"]): r for r in csv.DictReader(handle)}
    assert set(rows) == set(choices)
    assert rows[1.0e-2]["state"] == "COMPLETE" and rows[1.0e-2]["epochs"] == "3"
    assert rows[1.0e-7]["state"] == "PRUNED" and int(rows[1.0e-7]["epochs"]) < 3  # stopped early by ASHA
    best = min((r for r in rows.values() if r["state"] == "COMPLETE"), key=lambda r: float(r[metric]))
    assert f"lr: {float(best['model.lr'])}" in (out / "best.yaml").read_text()
    assert (out / "plots" / "optimization_history.png").is_file()
    assert (out / "trials" / best["number"] / "config.yaml").is_file()  # trained through litforge fit


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~1 min on an idle one
def test_ray_backend_with_the_shipped_space_files_searcher_numbers_its_trials(cli, tmp_path) -> None:
    # configs/digits_search.yaml asks for TPE: Ray's Optuna searcher, whose trial ids are 8 hex digits
    # (63173a8e), not the random search's a1b2c_00003.
    out = tmp_path / "search"
    args = ["--space", str(CONFIGS / "digits_search.yaml"), "--backend", "ray", "--out", str(out)]
    args += ["--n-trials", "2", "--workers", "1", "--cpus-per-trial", "1", *TINY_TRIAL]
    result = cli("tune", *args, "--trainer.max_epochs", "2", timeout=TUNE_TIMEOUT)
    assert result.returncode == 0, result.output[-3000:]

    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["number"] for r in rows) == ["0", "1"]
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows), rows
    for row in rows:  # each number is the trial's folder, holding its own parameters
        config = (out / "trials" / row["number"] / "config.yaml").read_text()
        assert f"hidden_dim: {row['model.hidden_dim']}" in config


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~40 s on an idle one
def test_a_raising_trial_is_a_fail_that_names_the_users_line(cli, tmp_path, write_space, flaky_env) -> None:
    """As with Optuna: the trial's error in trials.csv ends with where the user's own code raised it, not
    with the tail of Ray's traceback; the other trial completes."""
    config = tmp_path / "flaky.yaml"
    config.write_text(
        "model:\n  class_path: flaky_models.FlakyClassifier\n"
        "data:\n  class_path: litforge.data.DigitsDataModule\n"
    )
    space = {
        "metric": "val_loss",
        "params": {"model.mode": {"type": "categorical", "choices": ["ok", "raise"]}},
    }
    out = tmp_path / "search"
    args = [
        "--space",
        str(write_space(space)),
        "--backend",
        "ray",
        "--out",
        str(out),
        "--config",
        str(config),
    ]
    args += ["--sampler", "grid", "--workers", "1", "--cpus-per-trial", "1", *TINY_TRIAL]
    result = cli("tune", *args, "--trainer.max_epochs", "1", env=flaky_env, timeout=TUNE_TIMEOUT)
    assert result.returncode == 0, result.output[-3000:]
    with (out / "trials.csv").open() as handle:
        rows = {r["model.mode"]: r for r in csv.DictReader(handle)}
    assert rows["ok"]["state"] == "COMPLETE"
    assert rows["raise"]["state"] == "FAIL"
    assert rows["raise"]["fail_reason"] == (
        f"RuntimeError: boom: this trial raises on purpose (at flaky_models.py:{raising_line()} in training_step)"
    )


def test_more_gpus_per_trial_than_the_machine_has_is_one_line_exit_2(cli, tmp_path) -> None:
    import torch

    # One more GPU than torch sees (1 on a machine without GPUs): Tune would wait for it forever.
    wanted = str(torch.cuda.device_count() + 1)
    out = tmp_path / "search"
    args = ["--space", str(CONFIGS / "digits_search.yaml"), "--backend", "ray", "--out", str(out)]
    result = cli("tune", *args, "--gpus-per-trial", wanted, *TINY_TRIAL, timeout=TUNE_TIMEOUT)
    assert result.returncode == 2, result.output[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--gpus-per-trial {wanted}: this machine has" in lines[0], result.stderr
    assert not out.exists()
