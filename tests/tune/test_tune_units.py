"""Fast checks of the pieces behind ``litforge tune``: budget counting, storages, Ray domains, plots."""

from __future__ import annotations

import sqlite3

import lightning as L
import optuna
import pytest
from lightning.pytorch.demos.boring_classes import BoringModel
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from study_openers import open_together
from tune_helpers import LR_SPACE, check_dead_trial_sweeper

from litforge.errors import UsageError
from litforge.tune.optuna_backend import EpochsDone, suggest
from litforge.tune.optuna_factories import make_pruner, make_storage, progress, with_driver
from litforge.tune.outputs import TrialRecord, records_from_study, study_from_records, write_plots
from litforge.tune.rungs import parse_rungs, value_at
from litforge.tune.space import parse_space
from litforge.tune.trial import EachEpoch, MetricTracker


def _trial(state: TrialState, value: float | None = None, **user_attrs: str):
    return create_trial(
        state=state,
        value=value,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs=user_attrs,
    )


def test_grace_period_one_can_prune_after_the_first_epoch() -> None:
    # The pruning callback reports Lightning's 0-based current_epoch; 0 there means one epoch done.
    study = optuna.create_study(direction="maximize", pruner=make_pruner("successive-halving", 1, 3))
    first = study.ask()
    EpochsDone(first).report(0.9, 0)
    assert not first.should_prune()  # the first trial at a rung is the best there
    study.tell(first, 0.9)
    second = study.ask()
    EpochsDone(second).report(0.1, 0)
    assert second.should_prune()
    study.tell(second, state=TrialState.PRUNED)
    assert study.trials[1].intermediate_values == {1: 0.1}


def test_a_trial_is_never_pruned_at_its_last_epoch(tmp_path) -> None:
    """A rung at max_epochs (the default 6:3 under --trainer.max_epochs 6): the trial trained every epoch,
    so it completes with its value and checkpoints instead of being thrown away as pruned."""
    from optuna_integration import PyTorchLightningPruningCallback

    from litforge.tune.optuna_backend import _Pruning

    study = optuna.create_study(pruner=make_pruner("rungs", 1, 3, parse_rungs("2:2")))
    best = study.ask()
    best.report(0.1, 2)
    study.tell(best, 0.1)

    def fit(max_epochs: int) -> str:
        trial = study.ask()
        pruning = _Pruning(EpochsDone(trial), PyTorchLightningPruningCallback, "val_loss")
        trainer = L.Trainer(
            max_epochs=max_epochs,
            callbacks=[pruning],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_train_batches=1,
            limit_val_batches=1,
            default_root_dir=tmp_path,
        )

        class Worse(BoringModel):
            def validation_step(self, batch, batch_idx):
                self.log("val_loss", 5.0)

        try:
            trainer.fit(Worse())
        except optuna.TrialPruned:
            return f"pruned after {trainer.current_epoch + 1}"
        return f"complete after {trainer.current_epoch}"

    assert fit(max_epochs=3) == "pruned after 2"  # the rung at 2 of 3 epochs prunes the worse trial
    assert fit(max_epochs=2) == "complete after 2"  # at its last epoch it does not


def _report_all(study, curves: list[dict[int, float]]) -> list[bool]:
    """Run trials one after another, each reporting its curve (epochs done -> value) until pruned."""
    pruned = []
    for curve in curves:
        trial = study.ask()
        stopped = False
        for step, value in curve.items():
            trial.report(value, step)
            if trial.should_prune():
                stopped = True
                break
        study.tell(trial, state=TrialState.PRUNED) if stopped else study.tell(trial, max(curve.values()))
        pruned.append(stopped)
    return pruned


def test_rung_pruner_keeps_the_best_share_at_each_rung_and_none_after_the_last() -> None:
    study = optuna.create_study(
        direction="maximize", pruner=make_pruner("rungs", 1, 3, parse_rungs("1:4,3:2"))
    )
    # After 1 epoch: the first trial goes on (best so far); trial 1 (0.5 < 0.6) is cut; with 4 trials
    # there the bar is the best one (4 // 4), so 0.7 goes on and 0.65 does not. After 3 epochs trial 2
    # (0.8) meets trial 0 (0.9): 2 // 2 = 1 goes on, so it is cut. Rung-less epoch 5 prunes no one.
    curves = [
        {1: 0.6, 3: 0.9, 5: 0.1},
        {1: 0.5, 3: 0.99},
        {1: 0.7, 3: 0.8, 5: 0.95},
        {1: 0.65, 3: 0.99},
        {1: 0.75, 3: 0.95, 5: 0.0},
    ]
    assert _report_all(study, curves) == [False, True, True, True, False]
    minimize = optuna.create_study(pruner=make_pruner("rungs", 1, 3, parse_rungs("1:2")))
    assert _report_all(minimize, [{1: 0.5, 2: 9.0}, {1: 0.6}, {1: 0.4, 2: 9.0}]) == [False, True, False]


def test_rung_pruner_uses_the_first_report_at_or_after_a_rung() -> None:
    # Validation every second epoch: the rung at epoch 1 acts on the report after 2 epochs.
    study = optuna.create_study(direction="maximize", pruner=make_pruner("rungs", 1, 3, parse_rungs("1:2")))
    assert _report_all(study, [{2: 0.9, 4: 0.9}, {2: 0.8, 4: 0.99}, {2: 0.95, 4: 0.1}]) == [
        False,
        True,
        False,
    ]
    assert value_at({2: 0.8, 4: 0.9}, 1) == 0.8 and value_at({2: 0.8}, 3) is None


@pytest.mark.parametrize("text", ["0:3", "1:1", "1", "1:x", "3:3,2:3", "2:3,2:4"])
def test_bad_rungs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match=r"--rungs"):
        parse_rungs(text)


def test_budget_counts_raised_trials_but_not_killed_ones() -> None:
    study = optuna.create_study()
    study.add_trial(_trial(TrialState.COMPLETE, 1.0))
    study.add_trial(_trial(TrialState.PRUNED))
    study.add_trial(_trial(TrialState.FAIL, fail_reason="RuntimeError: boom"))  # tried: counts
    study.add_trial(_trial(TrialState.FAIL))  # its worker died or was interrupted: retried, not counted
    study.add_trial(_trial(TrialState.WAITING))  # a queued retry
    now = progress(study)
    assert (now.finished, now.failed, now.complete, now.running) == (3, 1, 1, 0)


def test_storage_urls(tmp_path) -> None:
    journal = make_storage(f"journal://{tmp_path / 'j' / 'study.log'}", heartbeat_s=5)
    study = optuna.create_study(storage=journal, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="s", storage=journal).trials) == 2
    sqlite = make_storage(f"sqlite:///{tmp_path / 'a.db'}", heartbeat_s=5)
    assert sqlite.get_heartbeat_interval() == 5
    with pytest.raises(UsageError, match="expected sqlite:///FILE, postgresql://"):
        make_storage("study.db", heartbeat_s=5)
    assert with_driver("sqlite:///x.db") == "sqlite:///x.db"
    assert with_driver("postgresql://u@h/db").startswith("postgresql")


def test_ray_domains_follow_the_space() -> None:
    pytest.importorskip("ray.tune")
    from ray.tune.search.sample import Categorical, Float, Integer

    from litforge.tune.ray_backend import TrialNumbers, ray_domain

    space = parse_space(
        {**LR_SPACE, "params": {**LR_SPACE["params"], "b": {"type": "categorical", "choices": [1, 2]}}}
    )
    lr, hidden, choice = (ray_domain(p) for p in space.params)
    assert isinstance(lr, Float) and (lr.lower, lr.upper) == (1e-3, 1e-2)
    assert isinstance(hidden, Integer) and hidden.lower == 16
    assert isinstance(choice, Categorical) and choice.categories == [1, 2]
    assert ray_domain(space.params[1], grid=True) == {"grid_search": [16, 32, 48, 64]}
    numbers = TrialNumbers()  # Ray's random search's ids, then its Optuna searcher's
    assert [numbers.number(i) for i in ("a1b2c_00003", "63173a8e", "a1b2c_00003", "0f9e8d7c")] == [0, 1, 0, 2]
    assert numbers.numbers() == {"a1b2c_00003": 0, "63173a8e": 1, "0f9e8d7c": 2}


def test_trials_needing_more_than_there_is_are_refused_on_this_machine_and_warned_about_on_a_cluster(
    capsys,
) -> None:
    pytest.importorskip("ray.tune")
    from litforge.tune.ray_backend import check_resources

    ray_has = {"CPU": 2.0, "memory": 1e9}  # no GPU key: none
    check_resources({"CPU": 2, "GPU": 0}, ray_has, None)
    with pytest.raises(UsageError, match=r"--cpus-per-trial 3: this machine has 2 CPUs for trials, so none"):
        check_resources({"CPU": 3, "GPU": 0}, ray_has, None)
    with pytest.raises(UsageError, match=r"--gpus-per-trial 0.5: this machine has no GPU for trials"):
        check_resources({"CPU": 1, "GPU": 0.5}, ray_has, None)
    check_resources({"CPU": 1, "GPU": 1}, ray_has, "auto")  # an autoscaler may still add a GPU node
    assert capsys.readouterr().err == (
        "litforge: warning: --gpus-per-trial 1: the Ray cluster at auto has no GPU now; "
        "trials wait until nodes with enough join\n"
    )


def test_list_choices_reach_the_trial_as_lists_and_the_plots_work(tmp_path, recwarn) -> None:
    """``model.hidden: {type: categorical, choices: [[16], [32, 16]]}``: Optuna stores JSON text (its
    storages and plots take scalars only); the trial, trials.csv and best.yaml get the lists."""
    space = parse_space(
        {
            "metric": "val_loss",
            "params": {
                "model.hidden": {"type": "categorical", "choices": [[16], [32, 16], [64, 32]]},
                "model.lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
            },
        }
    )
    seen = []

    def objective(trial):
        hidden = suggest(trial, space.params[0])
        seen.append(hidden)
        return sum(hidden) * suggest(trial, space.params[1])

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=6)
    assert all(isinstance(hidden, list) for hidden in seen) and len(seen) == 6
    records = records_from_study(study, space)
    assert [r.params["model.hidden"] for r in records] == seen
    assert not [w for w in recwarn if "categorical distribution" in str(w.message)]
    for plotted in (study, study_from_records(records, space)):  # Optuna's own study, and Ray's records
        assert "parallel_coordinate.png" in {p.name for p in write_plots(plotted, tmp_path)}


def test_plots_from_records_of_either_backend(tmp_path) -> None:
    space = parse_space(LR_SPACE)
    records = [
        TrialRecord(i, state, value, {"model.lr": lr, "model.hidden_dim": 32}, 1.0, {0: 1.0, 1: value or 2.0})
        for i, (state, value, lr) in enumerate(
            [
                ("COMPLETE", 0.5, 0.002),
                ("COMPLETE", 0.3, 0.005),
                ("PRUNED", None, 0.001),
                ("COMPLETE", 0.4, 0.008),
            ]
        )
    ]
    study = study_from_records(records, space)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    written = {p.name for p in write_plots(study, tmp_path)}
    assert {"optimization_history.png", "intermediate_values.html", "parallel_coordinate.png"} <= written


def _exit_at_once() -> None:
    pass


def test_a_worker_that_dies_before_the_start_breaks_the_barrier_for_the_others() -> None:
    import time

    from litforge.tune.worker_processes import watch_worker_starts, worker_context

    context = worker_context()
    ready = context.Barrier(2)  # this process and the worker below, which ends without reaching it
    worker = context.Process(target=_exit_at_once)
    worker.start()
    end_watch = watch_worker_starts(ready, [worker], poll_s=0.05)
    try:
        deadline = time.monotonic() + 60
        while not ready.broken and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.broken  # without the watch nobody breaks it: the others wait out its timeout
    finally:
        end_watch()
        worker.join()
    assert worker.exitcode == 0


def test_local_sqlite_study_uses_the_write_ahead_log(tmp_path) -> None:
    database = tmp_path / "study.db"
    study = optuna.create_study(storage=make_storage(f"sqlite:///{database}", heartbeat_s=5), study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # A second connection, as optuna-dashboard would open, sees every committed trial.
    reader = optuna.load_study(study_name="s", storage=f"sqlite:///{database}")
    assert [t.state.name for t in reader.trials] == ["COMPLETE"] * 3


def test_sqlite_url_with_query_parameters_is_left_to_sqlalchemy(tmp_path) -> None:
    database = tmp_path / "study.db"
    storage = make_storage(f"sqlite:///{database}?timeout=30", heartbeat_s=5)
    optuna.create_study(storage=storage, study_name="s").optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1
    )
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".db" or "?" in p.name] == ["study.db"]


def test_processes_opening_a_new_study_database_together_all_succeed(tmp_path) -> None:
    # Optuna creates the tables without a lock; before litforge retried, 3 to 5 in 10 such rounds failed.
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    urls = [f"sqlite:///{tmp_path / f'study{i}.db'}" for i in range(6)]
    start, results = context.Barrier(4), context.Queue()
    processes = [context.Process(target=open_together, args=(urls, start, results)) for _ in range(4)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in range(4 * len(urls))]
    for process in processes:
        process.join(timeout=60)
    assert outcomes == ["ok"] * len(outcomes)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_dead_trial_sweeper_fails_and_retries_trials_without_a_heartbeat_after_the_grace_period(
    tmp_path,
) -> None:
    from litforge.tune.dead_trials import has_heartbeat

    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_s=60)  # stale after 180 s
    assert has_heartbeat(storage)
    assert not has_heartbeat(make_storage(f"journal://{tmp_path / 'study.log'}", heartbeat_s=1))
    check_dead_trial_sweeper(storage)


def test_a_space_key_reaches_an_injected_class_argument():
    from litforge.engine.api import parse_fit_config
    from litforge.tune.fit_config import SearchConfig
    from litforge.tune.space import parse_space

    injected = ["--model", "usermods.InjectedNetModel", "--model.net", "usermods.MLP"]
    fit = parse_fit_config(
        [*injected, "--model.optimizer", "torch.optim.SGD", "--data", "usermods.MyDataModule"]
    )
    assert fit.key("model.optimizer.lr") == "model.init_args.optimizer.init_args.lr"
    assert fit.key("model.init_args.net.hidden") == "model.init_args.net.init_args.hidden"
    assert fit.has("model.net.hidden") and not fit.has("model.net.hiden")
    assert fit.with_values({"model.optimizer.lr": 0.5})["model.init_args.optimizer.init_args.lr"] == 0.5
    # a typo there lists the optimizer's arguments, not the model's
    space = parse_space(
        {"metric": "val_loss", "params": {"model.optimizer.lrr": {"type": "float", "low": 0.01, "high": 0.1}}}
    )
    with pytest.raises(
        UsageError, match=r"\(model\.optimizer has: dampening, .*; did you mean model\.optimizer\.lr\?\)"
    ):
        SearchConfig(
            [*injected, "--model.optimizer", "torch.optim.SGD", "--data", "usermods.MyDataModule"], space, 0
        )


class _LoggingBoring(BoringModel):
    def validation_step(self, batch, batch_idx):
        loss = self.step(batch)
        self.log("val_loss", loss)
        return loss


@pytest.mark.parametrize("val_check_interval", [1.0, 0.5])
def test_a_trial_reports_once_per_epoch_however_often_it_validates(val_check_interval) -> None:
    """``val_check_interval: 0.5`` validates twice an epoch: the pruner still gets one report per epoch,
    steps 1, 2, 3 (a second report of a step would be dropped by Optuna as a duplicate)."""
    reports = []

    class Pruning(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            reports.append(trainer.current_epoch)

    tracker = MetricTracker("val_loss", maximize=False)
    trainer = L.Trainer(
        max_epochs=3,
        limit_train_batches=4,
        limit_val_batches=2,
        val_check_interval=val_check_interval,
        callbacks=[tracker, EachEpoch(Pruning())],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_LoggingBoring())
    assert reports == [0, 1, 2]
    assert len(tracker.values) == 3


@pytest.mark.parametrize(
    ("metric", "hint", "noted"),
    [("val_los", "did you mean val_loss?", True), ("train_loss", "it logs: val_loss", False)],
)
def test_a_metric_missing_at_the_sanity_check_is_noted_and_refused_after_the_first_epoch(
    metric, hint, noted, capsys
) -> None:
    """``val_los`` beside ``val_loss`` gets a note after the sanity check, before a step is trained; the
    refusal waits for the first epoch's end, since a model may log a metric only outside the sanity check
    (``if not self.trainer.sanity_checking``)."""
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=4,
        limit_val_batches=2,
        callbacks=[MetricTracker(metric, maximize=False)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(UsageError, match=f"metric '{metric}' is not logged .*{hint}"):
        trainer.fit(_LoggingBoring())
    assert trainer.global_step == 4
    assert (
        "the sanity check logged no 'val_los' (did you mean val_loss?)" in capsys.readouterr().err
    ) == noted


def test_rungs_past_the_trials_last_epoch_are_named_with_rungs_that_fit(capsys) -> None:
    """The default rungs 1:4,6:3 under --trainer.max_epochs 4: rung 6:3 never prunes, and the note says so."""
    from types import SimpleNamespace

    from litforge.tune.run import _note_rungs_past_the_end
    from litforge.tune.rungs import Rung

    def fit(max_epochs: int, max_steps: int = -1) -> SimpleNamespace:
        trainer = SimpleNamespace(max_epochs=max_epochs, max_steps=max_steps)
        return SimpleNamespace(resolve=lambda _: SimpleNamespace(trainer=trainer))

    _note_rungs_past_the_end(SimpleNamespace(pruner="rungs", rungs=()), fit(4))
    assert "rung 6:3 falls at or after the trials' last epoch (4) and never prunes" in capsys.readouterr().err
    _note_rungs_past_the_end(SimpleNamespace(pruner="rungs", rungs=()), fit(1))
    assert (
        "rungs 1:4, 6:3 fall at or after the trials' last epoch (1) and never prune"
        in capsys.readouterr().err
    )
    _note_rungs_past_the_end(SimpleNamespace(pruner="rungs", rungs=(Rung(1, 2), Rung(2, 3))), fit(4))
    _note_rungs_past_the_end(SimpleNamespace(pruner="median", rungs=()), fit(2))
    assert capsys.readouterr().err == ""
    _note_rungs_past_the_end(SimpleNamespace(pruner="rungs", rungs=()), fit(1))
    assert "e.g. --pruner none" in capsys.readouterr().err
    # trials by steps: pruning counts epochs, which such a trial may never finish
    _note_rungs_past_the_end(SimpleNamespace(pruner="median", rungs=()), fit(-1, max_steps=300))
    assert "the trials train by steps (max_steps 300, no max_epochs)" in capsys.readouterr().err
    _note_rungs_past_the_end(SimpleNamespace(pruner="none", rungs=()), fit(-1, max_steps=300))
    assert capsys.readouterr().err == ""


def test_a_trial_stopped_by_ctrl_c_is_queued_again_once() -> None:
    """Ctrl+C: Optuna marks the running trial FAIL with no reason, and trials.csv promised "the study runs
    these parameters again"; only a killed worker's trial was retried (by the heartbeat). Now it is queued
    too; a trial that failed with a reason, or that was retried already, is not."""
    from litforge.tune.optuna_factories import requeue_interrupted

    study = optuna.create_study()
    lr = FloatDistribution(1e-4, 1e-1, log=True)
    study.add_trial(
        create_trial(state=TrialState.FAIL, params={"model.lr": 0.01}, distributions={"model.lr": lr})
    )
    raised = create_trial(state=TrialState.FAIL, params={"model.lr": 0.02}, distributions={"model.lr": lr})
    raised.set_user_attr("fail_reason", "RuntimeError: boom")
    study.add_trial(raised)
    given_up = create_trial(
        state=TrialState.FAIL,
        params={"model.lr": 0.03},
        distributions={"model.lr": lr},
        system_attrs={"retry_history": [0, 1, 2]},  # its worker died on each of the heartbeat's retries
    )
    study.add_trial(given_up)
    assert requeue_interrupted(study) == [0]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [(t.system_attrs["fixed_params"], t.user_attrs["retry_of"]) for t in waiting] == [
        ({"model.lr": 0.01}, 0)
    ]
    assert requeue_interrupted(study) == []  # queued once
