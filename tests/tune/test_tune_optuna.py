"""``litforge tune`` with Optuna end to end: pruning, best.yaml, failures, kill -9 resume, two workers."""

from __future__ import annotations

import copy
import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tune_helpers import LR_SPACE, TINY_TRIAL, TUNE_TIMEOUT, finished_trials, load_study, raising_line

from cli_helpers import processes_tagged, wait_until_gone
from litforge.tune.optuna_factories import make_storage


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _min_val_loss(run: Path) -> float:
    return min(float(r["val_loss"]) for r in _rows(run / "metrics.csv") if r.get("val_loss"))


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~1 min on an idle one
def test_median_pruner_prunes_a_bad_lr_region_and_best_yaml_reproduces(cli, tmp_path, write_space) -> None:
    space = copy.deepcopy(LR_SPACE)
    # lr=1e-6 barely moves the loss in 3 epochs. The seeded random sampler draws it for trials 2 and 5:
    # trial 2 is one of the median pruner's 5 start-up trials, trial 5 is pruned at its first epoch.
    space["params"] = {"model.lr": {"type": "categorical", "choices": [1.0e-6, 3.0e-3, 5.0e-3, 1.0e-2]}}
    path = write_space(space)
    out = tmp_path / "search"
    args = ["--space", str(path), "--out", str(out), "--n-trials", "6", "--sampler", "random"]
    args += ["--pruner", "median", "--grace-period", "1", "--seed", "0", *TINY_TRIAL]
    result = cli("tune", *[a for a in args if a != "--no-plots"], timeout=TUNE_TIMEOUT)
    assert result.returncode == 0, result.output[-3000:]

    rows = _rows(out / "trials.csv")
    assert [int(r["number"]) for r in rows] == list(range(6))
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert [(r["number"], float(r["model.lr"]), r["epochs"]) for r in pruned] == [("5", 1e-6, "1")]
    assert pruned[0]["val_loss"] == "" and float(pruned[0]["last_val_loss"]) > 0  # where it stood
    assert "(a pruned trial's value in parentheses: its last epoch's)" in result.stdout
    for plot in ("optimization_history", "intermediate_values", "parallel_coordinate"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 1000
        assert (out / "plots" / f"{plot}.html").is_file()
    assert "best: trial" in result.stdout
    # the study is whole in study.db: its write-ahead log was folded in and the connections closed
    assert sorted(p.name for p in out.glob("study.db*")) == ["study.db"]

    best = min((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: float(r["val_loss"]))
    kept = sorted(p.parent.parent.name for p in out.glob("trials/*/checkpoints/best.ckpt"))
    assert best["number"] in kept and len(kept) <= 3  # only the top-3 trials keep checkpoints

    # best.yaml is a complete fit config: training from it gives the best trial's value again, and its
    # best.ckpt is kept by the metric the search ranked by (the fit config named no --monitor)
    assert {"monitor: val_loss", "monitor_mode: min"} <= set((out / "best.yaml").read_text().splitlines())
    refit = cli(
        "fit", "--config", str(out / "best.yaml"), "--trainer.default_root_dir", str(tmp_path / "refit")
    )
    assert refit.returncode == 0, refit.output[-3000:]
    (run,) = (tmp_path / "refit").glob("*/*/metrics.csv")
    assert math.isclose(_min_val_loss(run.parent), float(best["val_loss"]), rel_tol=1e-6)


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~1 min on an idle one
@pytest.mark.parametrize("metric", ["val_loss", "train_loss_epoch"])
def test_rung_pruner_cuts_at_its_rungs_only(cli, tmp_path, write_space, metric) -> None:
    space = copy.deepcopy(LR_SPACE)
    space["params"] = {"model.lr": {"type": "categorical", "choices": [1.0e-6, 3.0e-3, 5.0e-3, 1.0e-2]}}
    space["metric"] = metric
    out = tmp_path / "search"
    args = ["--space", str(write_space(space)), "--out", str(out), "--n-trials", "6", "--sampler", "random"]
    args += ["--rungs", "1:2", "--seed", "0", *TINY_TRIAL]  # the default pruner is rungs
    if (
        metric == "train_loss_epoch"
    ):  # no validation loop: trials are reported and pruned at training epoch ends
        args += ["--trainer.limit_val_batches", "0"]
    result = cli("tune", *args, timeout=TUNE_TIMEOUT)
    assert result.returncode == 0, result.output[-3000:]
    # After 1 epoch a trial must be in the better half of those there; lr=1e-6 (trials 2 and 5) never
    # is. No rung after epoch 1: every other trial runs its 3 epochs.
    rows = _rows(out / "trials.csv")
    assert [(float(r["model.lr"]), r["state"], r["epochs"]) for r in rows if r["state"] == "PRUNED"] == [
        (1e-6, "PRUNED", "1"),
        (1e-6, "PRUNED", "1"),
    ]
    assert all(r["epochs"] == "3" for r in rows if r["state"] == "COMPLETE") and len(rows) == 6
    # each trial's best.ckpt is chosen by the search's metric (with no validation loop too)
    assert "so the run has checkpoints/last.ckpt but no best.ckpt" not in result.stderr
    best = min((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: float(r[metric]))
    assert (out / "trials" / best["number"] / "checkpoints" / "best.ckpt").is_file()


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~1 min on an idle one
def test_raising_and_nan_trials_are_recorded_as_fail(cli, tmp_path, write_space, flaky_env) -> None:
    config = tmp_path / "flaky.yaml"
    config.write_text(
        "seed_everything: 1\n"
        "model:\n  class_path: flaky_models.FlakyClassifier\n"
        "data:\n  class_path: litforge.data.DigitsDataModule\n"
    )
    space = {
        "metric": "val_loss",
        "params": {"model.mode": {"type": "categorical", "choices": ["ok", "raise", "nan"]}},
    }

    def tune(space_file: Path, out: str):
        return cli(
            "tune",
            "--space",
            str(space_file),
            "--out",
            str(tmp_path / out),
            *("--config", str(config), "--sampler", "grid", "--pruner", "none", *TINY_TRIAL),
            env=flaky_env,
            timeout=TUNE_TIMEOUT,
        )

    result = tune(write_space(space), "a")
    assert result.returncode == 0, result.output[-3000:]
    rows = {r["model.mode"]: r for r in _rows(tmp_path / "a" / "trials.csv")}
    assert rows["ok"]["state"] == "COMPLETE"
    assert rows["raise"]["state"] == "FAIL" and "RuntimeError: boom" in rows["raise"]["fail_reason"]
    assert f"(at flaky_models.py:{raising_line()} in training_step)" in rows["raise"]["fail_reason"]  # theirs
    assert (
        rows["nan"]["state"] == "FAIL" and "loss is nan" in rows["nan"]["fail_reason"]
    )  # the finite-loss guard

    # A search where every trial fails ran and produced nothing: exit 1, with the reason on record.
    space["params"]["model.mode"]["choices"] = ["raise"]
    result = tune(write_space(space, "all_fail.yaml"), "b")
    assert result.returncode == 1
    assert "no trial completed" in result.stderr
    assert _rows(tmp_path / "b" / "trials.csv")[0]["state"] == "FAIL"


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~1 min on an idle one
def test_kill_9_mid_study_then_rerun_finishes_exactly_n_trials(tmp_path, write_space) -> None:
    path = write_space(LR_SPACE)
    out = tmp_path / "search"
    url = f"sqlite:///{out / 'study.db'}"
    args = ["--space", str(path), "--out", str(out), "--n-trials", "4", "--sampler", "random"]
    args += ["--pruner", "none", "--heartbeat", "1", *TINY_TRIAL, "--trainer.max_epochs", "6"]
    command = [sys.executable, "-m", "litforge", "tune", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    worker = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    killed = None
    deadline = time.monotonic() + TUNE_TIMEOUT
    while killed is None and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.2)
        if not (out / "study.db").exists():
            continue
        try:
            trials = load_study(url, "space").get_trials()
        except Exception:  # the study is still being created
            continue
        # a trial with epochs left, so that it is still running when the kill lands (on a loaded machine a
        # trial in its last epoch could complete between this look and the signal)
        running = [t for t in trials if t.state.name == "RUNNING" and len(t.intermediate_values) <= 2]
        if any(t.state.name == "COMPLETE" for t in trials) and running:
            os.kill(worker.pid, signal.SIGKILL)
            killed = running[0]
    worker.wait(timeout=30)
    assert killed is not None, worker.stderr.read().decode()[-2000:] if worker.stderr else ""
    done_before = {t.number: t.params for t in finished_trials(load_study(url, "space"))}

    time.sleep(3)  # > 3 heartbeats: the killed trial is now stale
    rerun = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TUNE_TIMEOUT
    )
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]

    study = load_study(url, "space")
    finished = finished_trials(study)
    assert len(finished) == 4  # exactly n_trials in total, not 4 more
    assert all(done_before[n] == p for n, p in done_before.items() if n in {t.number for t in finished})
    assert {t.number for t in finished} >= set(done_before)  # nothing completed is lost
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 4  # no parameter set twice
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[killed.number] == "FAIL"
    retries = [t for t in finished if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params  # the killed trial ran again
    rows = _rows(out / "trials.csv")
    assert len(rows) == len(study.get_trials())
    by_number = {int(row["number"]): row for row in rows}
    assert "its worker stopped (kill -9" in by_number[killed.number]["fail_reason"]  # not an empty reason


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~30 s on an idle one
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_trials_of_dead_workers_with_or_without_a_heartbeat_are_retried_on_resume(cli, tmp_path, write_space):
    # The state a kill -9 leaves behind. Optuna creates a trial (RUNNING) and only then starts recording its
    # heartbeat: killed in between, the trial has no heartbeat, and Optuna never fails such a trial. Killed
    # later, the trial has a heartbeat that stops. study.ask() makes exactly the first state.
    import optuna

    path = write_space(LR_SPACE)
    out = tmp_path / "search"
    out.mkdir()
    url = f"sqlite:///{out / 'study.db'}"
    storage = make_storage(url, heartbeat_s=1)
    study = optuna.create_study(storage=storage, study_name="space")
    dead = []
    for lr in (2.0e-3, 4.0e-3):
        study.enqueue_trial({"model.lr": lr, "model.hidden_dim": 32})
        trial = study.ask()
        trial.suggest_float("model.lr", 1.0e-3, 1.0e-2, log=True)
        trial.suggest_int("model.hidden_dim", 16, 64, step=16)
        dead.append(study.get_trials()[trial.number])
    study_id = storage.get_study_id_from_name("space")
    storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, dead[1].number))

    args = ["--space", str(path), "--out", str(out), "--n-trials", "2", "--sampler", "random"]
    result = cli("tune", *args, "--pruner", "none", "--heartbeat", "1", *TINY_TRIAL, timeout=TUNE_TIMEOUT)
    assert result.returncode == 0, result.output[-3000:]

    study = load_study(url, "space")
    states = {t.number: t.state.name for t in study.get_trials()}
    assert [states[t.number] for t in dead] == ["FAIL", "FAIL"]
    finished = finished_trials(study)
    assert len(finished) == 2  # the two retries: n_trials in total
    retried = {t.system_attrs["failed_trial"]: t.params for t in finished}
    assert retried == {t.number: t.params for t in dead}  # each dead trial ran again with its parameters
    rows = _rows(out / "trials.csv")
    assert len(rows) == len(study.get_trials())
    by_number = {int(row["number"]): row for row in rows}
    assert all("its worker stopped (kill -9" in by_number[t.number]["fail_reason"] for t in dead)


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~1 min on an idle one
def test_two_workers_share_the_default_storage_without_duplicates(
    cli, tmp_path, write_space, flaky_env
) -> None:
    path = write_space(LR_SPACE)
    out = tmp_path / "search"
    args = ["--space", str(path), "--out", str(out), "--n-trials", "4", "--workers", "2"]
    # a loader with a worker and a lambda collate_fn: each tune worker forks its loader workers as fit does
    args += ["--data", "flaky_models.LambdaCollateDigits"]
    tiny = [*TINY_TRIAL, "--sampler", "random", "--pruner", "none"]
    result = cli("tune", *args, *tiny, env=flaky_env, timeout=TUNE_TIMEOUT)
    assert result.returncode == 0, result.output[-3000:]
    assert "FAIL" not in result.stdout, result.stdout
    assert "[worker 0]" in result.stdout and "[worker 1]" in result.stdout
    study = load_study(f"sqlite:///{out / 'study.db'}", "space")
    finished = finished_trials(study)
    assert 4 <= len(finished) <= 5  # both workers may finish their last trial at the same moment
    numbers = [t.number for t in study.get_trials()]
    assert len(numbers) == len(set(numbers))
    assert len({tuple(sorted(t.params.items())) for t in finished}) == len(finished)


@pytest.mark.timeout(1800)
def test_kill_9_of_tune_ends_its_worker_processes_too(tmp_path, write_space) -> None:
    path = write_space(LR_SPACE)
    out = tmp_path / "search"
    args = ["--space", str(path), "--out", str(out), "--n-trials", "40", "--workers", "2", "--pruner", "none"]
    args += [*TINY_TRIAL, "--trainer.max_epochs", "20"]  # minutes of work: a surviving worker would be seen
    tag = f"tune-{os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LITFORGE_TEST_TAG": tag}
    main = subprocess.Popen(
        [sys.executable, "-m", "litforge", "tune", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + TUNE_TIMEOUT
    for line in main.stdout:  # wait until the second worker has finished a trial
        if "[worker 1]" in line or time.monotonic() > deadline:
            break
    assert len(processes_tagged(tag)) >= 2  # the main process and at least its second worker
    os.kill(main.pid, signal.SIGKILL)
    main.wait(timeout=30)
    assert wait_until_gone(tag) == []


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~20 s on an idle one
def test_patience_stops_trials_on_a_plateau_and_best_yaml_stops_there_too(cli, tmp_path, write_space) -> None:
    # A learning rate of ~1e-9 leaves every prediction, so val_acc, unchanged: a plateau from epoch 1.
    path = write_space(
        {
            "metric": "val_acc",
            "direction": "maximize",
            "params": {"model.lr": {"type": "float", "low": 1.0e-9, "high": 2.0e-9}},
        }
    )
    out = tmp_path / "search"
    args = ["--space", str(path), "--out", str(out), "--n-trials", "2", "--pruner", "none", "--patience", "2"]
    result = cli("tune", *args, *TINY_TRIAL, "--trainer.max_epochs", "6", timeout=TUNE_TIMEOUT)
    assert result.returncode == 0, result.output[-3000:]
    # Epoch 1 sets the best; epochs 2 and 3 do not beat it: stop after 3 of the 6 epochs.
    assert [r["epochs"] for r in _rows(out / "trials.csv")] == ["3", "3"]

    refit = cli(
        "fit", "--config", str(out / "best.yaml"), "--trainer.default_root_dir", str(tmp_path / "refit")
    )
    assert refit.returncode == 0, refit.output[-3000:]
    (metrics,) = (tmp_path / "refit").glob("*/*/metrics.csv")
    assert len([r for r in _rows(metrics) if r.get("val_acc")]) == 3

    # Without --patience a trial trains every epoch.
    plain = cli(
        "tune", *args[:-2], "--out", str(tmp_path / "plain"), *TINY_TRIAL, "--trainer.max_epochs", "4"
    )
    assert plain.returncode == 0, plain.output[-3000:]
    assert [r["epochs"] for r in _rows(tmp_path / "plain" / "trials.csv")] == ["4", "4"]


@pytest.mark.timeout(1800)  # generous for a loaded shared machine; ~20 s on an idle one
def test_a_refused_search_leaves_nothing_and_a_study_keeps_its_metric(cli, tmp_path, write_space) -> None:
    out = tmp_path / "search"
    args = [
        "--out",
        str(out),
        "--study-name",
        "s",
        "--n-trials",
        "2",
        *TINY_TRIAL,
        "--trainer.max_epochs",
        "2",
    ]
    wrong = write_space({**LR_SPACE, "metric": "val_los"}, "wrong.yaml")
    refused = cli("tune", "--space", str(wrong), *args, timeout=TUNE_TIMEOUT)
    assert refused.returncode == 2 and "metric 'val_los' is not logged" in refused.stderr, refused.output
    assert "did you mean val_loss?" in refused.stderr
    assert not out.exists()  # no study.db holding a failed trial of a metric nobody logs
    # No validation loop: the trials optimize a training metric, and count the epochs they trained.
    train_space = write_space({**LR_SPACE, "metric": "train_loss_epoch"}, "train.yaml")
    no_val = ["--trainer.limit_val_batches", "0"]
    done = cli("tune", "--space", str(train_space), *args, *no_val, timeout=TUNE_TIMEOUT)
    assert done.returncode == 0, done.output[-3000:]
    assert [r["epochs"] for r in _rows(out / "trials.csv")] == ["2", "2"]
    # The same command again: the study has its 2 trials; it says why nothing runs (it reprinted the table)
    again = cli("tune", "--space", str(train_space), *args, *no_val, timeout=TUNE_TIMEOUT)
    assert again.returncode == 0, again.output[-3000:]
    assert "study 's' already has 2 finished trials (--n-trials 2), so no trial runs" in again.stderr
    assert len(load_study(f"sqlite:///{out / 'study.db'}", "s").trials) == 2
    # The same study with another fit config: its trials would not compare; refused, naming the change.
    # A searched key's base value (each trial sets its own) is no change.
    longer = cli(
        "tune", "--space", str(train_space), *args, *no_val, "--trainer.max_epochs", "3", "--model.lr", "0.5"
    )
    assert longer.returncode == 2, longer.output
    assert "ran another fit config (trainer.max_epochs: 2 -> 3):" in longer.stderr
    # The study in that folder optimizes train_loss_epoch: another metric is refused, the study kept.
    other = cli("tune", "--space", str(write_space(LR_SPACE, "val.yaml")), *args, timeout=TUNE_TIMEOUT)
    assert other.returncode == 2 and "optimizes train_loss_epoch" in other.stderr, other.output
    assert len(load_study(f"sqlite:///{out / 'study.db'}", "s").trials) == 2
