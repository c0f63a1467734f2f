"""Which way ``best.ckpt`` and a search optimize a metric when no mode or direction is given."""

from __future__ import annotations

import pytest
import torch
from jsonargparse import Namespace
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from litforge.callbacks.monitor_mode import (
    configured_mode,
    configured_monitors,
    mode_by_name,
    unstated_mode_notes,
)
from litforge.cli.tune import with_direction
from litforge.engine.trainer_setup import best_checkpoint_monitor
from litforge.tune.space import parse_space


@pytest.mark.parametrize(
    ("metric", "mode"),
    [
        ("val_iou", "max"),
        ("val/acc_top1", "max"),
        ("test-f1", "max"),
        ("val_loss", None),
        ("val_mae", None),
        ("val_dice_loss", None),  # a loss of a score: lower is better
        ("val_top1_err", None),
        # torchmetrics' class names, as a MetricCollection of a list logs them
        ("val_MulticlassF1Score", "max"),
        ("val_MulticlassAUROC", "max"),
        ("val_ExplainedVariance", "max"),  # no score word: the class's higher_is_better says so
        ("val_MeanSquaredError", None),
        ("val_MulticlassCalibrationError", None),
        ("val_MulticlassHammingDistance", None),
        ("val_IoU", "max"),  # mixed case that is no CamelCase class name: its words as written
        ("val/mIoU", "max"),
        ("val_nDCG", "max"),
    ],
)
def test_a_scores_name_means_higher_is_better(metric: str, mode: str | None) -> None:
    assert mode_by_name(metric) == mode


def test_the_config_callbacks_mode_is_read_from_built_callbacks_and_from_their_config() -> None:
    built = [EarlyStopping(monitor="val_iou", mode="max")]
    config = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"monitor": "val_dice"}}
    ]
    namespaces = [Namespace(class_path="EarlyStopping", init_args=Namespace(monitor="val_x", mode="max"))]
    assert configured_mode(configured_monitors(built), "val_iou") == "max"
    assert configured_mode(configured_monitors(config), "val_dice") == "min"  # Lightning's default mode
    assert configured_mode(configured_monitors(namespaces), "val_x") == "max"
    assert configured_mode(configured_monitors(built), "val_loss") is None

    class OwnStopping(EarlyStopping):  # a subclass counts as the Lightning callback it extends
        pass

    assert configured_monitors([OwnStopping(monitor="val_f1", mode="max")]) == [
        ("EarlyStopping", "val_f1", "max")
    ]


class _Model:
    checkpoint_monitor = "val_acc"


def test_a_config_files_monitor_mode_against_its_callback_or_the_name_is_kept_with_a_note() -> None:
    """A run's config.yaml of an earlier litforge records ``monitor_mode: min``: reused with ``--monitor
    val_iou``, it is kept (it is the config's), and a note says what the callback or the name says."""
    stopper = [EarlyStopping(monitor="val_iou", mode="max")]
    *chosen, note = best_checkpoint_monitor(stopper, "val_iou", "min", _Model(), mode_typed=False)
    assert tuple(chosen) == ("val_iou", "min")
    assert "keeps the lowest val_iou (monitor_mode min of the config) while the config's callback" in note
    *_, named = best_checkpoint_monitor([], "val_acc", "min", _Model(), mode_typed=False)
    assert "while its name says max: --monitor_mode max to keep the highest" in named
    assert best_checkpoint_monitor([], "val_acc", "min", _Model(), mode_typed=True)[2] is None
    assert best_checkpoint_monitor([], "val_loss", "min", _Model(), mode_typed=False)[2] is None


class _Plain:
    pass


@pytest.mark.parametrize(
    ("given", "monitor", "mode", "model", "expected", "noted"),
    [
        ([], "val_iou", None, _Plain(), ("val_iou", "max"), "the highest val_iou, a score by its name"),
        ([], "val_iou", "min", _Plain(), ("val_iou", "min"), None),  # typed: kept
        ([EarlyStopping(monitor="val_iou", mode="max")], "val_iou", None, _Plain(), ("val_iou", "max"), None),
        (
            [EarlyStopping(monitor="val_iou", mode="max")],
            None,
            None,
            _Plain(),
            ("val_iou", "max"),
            "config's EarlyStopping",
        ),
        # the model's own checkpoint_monitor comes before an EarlyStopping's metric
        (
            [EarlyStopping(monitor="val_iou", mode="max")],
            None,
            None,
            _Model(),
            ("val_acc", "max"),
            "by its name",
        ),
        ([ModelCheckpoint(monitor="val_rmse")], None, None, _Model(), ("val_rmse", "min"), None),
        ([], "val_loss", None, _Plain(), ("val_loss", "min"), None),
    ],
)
def test_best_ckpt_follows_the_mode_the_user_gave_or_the_config_or_the_metrics_name(
    given, monitor, mode, model, expected, noted
) -> None:
    """``--monitor val_iou`` used to keep the lowest IoU (mode min), and a config whose only criterion was an
    EarlyStopping on val_iou (max) got best.ckpt by val_loss."""
    *chosen, note = best_checkpoint_monitor(given, monitor, mode, model)
    assert tuple(chosen) == expected
    assert (note is None) if noted is None else (noted in note)


class _Fit:
    def __init__(self, callbacks: list, fit_args: list[str] | None = None) -> None:
        self.callbacks = callbacks
        self.fit_args = fit_args or []

    def resolve(self, values: dict) -> Namespace:
        return Namespace(trainer=Namespace(callbacks=self.callbacks))


@pytest.mark.parametrize(
    ("space", "callbacks", "direction"),
    [
        ({"metric": "val_iou"}, [], "maximize"),  # a score: maximized, with a note
        ({"metric": "val_loss"}, [], "minimize"),
        (
            {"metric": "val_x"},
            [Namespace(class_path="EarlyStopping", init_args=Namespace(monitor="val_x", mode="max"))],
            "maximize",
        ),
        ({"metric": "val_iou", "direction": "minimize"}, [], "minimize"),  # written: kept
        # no mode written: Lightning's default min does not outweigh a score's name
        ({"metric": "val_recall_at_10"}, [EarlyStopping(monitor="val_recall_at_10")], "maximize"),
    ],
)
def test_a_space_without_direction_optimizes_the_way_the_config_or_the_name_says(
    space, callbacks, direction
) -> None:
    parsed = parse_space({**space, "params": {"model.lr": {"type": "float", "low": 0.001, "high": 0.1}}})
    assert with_direction(parsed, _Fit(callbacks)).direction == direction


def test_a_callbacks_mode_counts_only_where_the_user_wrote_one(tmp_path, capsys) -> None:
    """``EarlyStopping(monitor: val_recall_at_10)`` without ``mode:`` has Lightning's default min: tune
    minimized the recall and best.ckpt kept its lowest epoch, silently. A mode written in a config file or
    typed is the user's word and holds."""
    from litforge.engine.config_sources import scan, stated_callback_modes

    stopper = "trainer:\n  callbacks:\n  - class_path: EarlyStopping\n    init_args:\n      monitor: val_recall_at_10\n"
    (tmp_path / "unstated.yaml").write_text(stopper)
    (tmp_path / "stated.yaml").write_text(stopper + "      mode: min\n")
    assert stated_callback_modes(scan(["-c", str(tmp_path / "unstated.yaml")])) == set()
    assert stated_callback_modes(scan(["-c", str(tmp_path / "stated.yaml")])) == {"val_recall_at_10"}
    # a config litforge wrote (a run's config.yaml, --print_config) spells out every default: no one's word
    (tmp_path / "dump.yaml").write_text(
        "checkpoint_every_n_steps: 200\nmonitor_mode: null\n" + stopper + "      mode: min\n"
    )
    assert stated_callback_modes(scan(["-c", str(tmp_path / "dump.yaml")])) == set()
    typed = ["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val_f1"]
    assert stated_callback_modes(scan(typed)) == set()
    assert stated_callback_modes(scan([*typed, "--trainer.callbacks.mode", "min"])) == {"val_f1"}

    given = [EarlyStopping(monitor="val_recall_at_10")]  # mode "min": Lightning's default
    *chosen, note = best_checkpoint_monitor(given, None, None, _Plain(), stated=set())
    assert (
        tuple(chosen) == ("val_recall_at_10", "max")
        and "(max), the metric of the config's EarlyStopping" in note
    )
    assert best_checkpoint_monitor(given, None, None, _Plain(), stated={"val_recall_at_10"})[:2] == (
        "val_recall_at_10",
        "min",
    )
    assert best_checkpoint_monitor(given, "val_recall_at_10", None, _Plain(), stated=set())[:2] == (
        "val_recall_at_10",
        "max",
    )
    (note,) = unstated_mode_notes(configured_monitors(given), set())
    assert "EarlyStopping on val_recall_at_10 gives no mode, so Lightning's default min applies" in note
    assert unstated_mode_notes(configured_monitors(given), {"val_recall_at_10"}) == []

    space = parse_space(
        {"metric": "val_recall_at_10", "params": {"model.lr": {"type": "float", "low": 0.1, "high": 1}}}
    )
    assert with_direction(space, _Fit(given, ["-c", str(tmp_path / "stated.yaml")])).direction == "minimize"
    with_direction(space, _Fit(given, ["-c", str(tmp_path / "unstated.yaml")]))
    assert "gives no mode" in capsys.readouterr().err


def test_fit_says_when_a_config_callback_on_a_score_has_only_lightnings_default_mode(cli, tmp_path) -> None:
    from cli_helpers import TINY_TRAINER

    (tmp_path / "es.yaml").write_text(
        "trainer:\n  callbacks:\n  - class_path: EarlyStopping\n    init_args:\n      monitor: val_acc\n"
    )
    result = cli("fit", "-c", "es.yaml", *TINY_TRAINER, "--run", "r", "--monitor", "val_acc")
    assert result.returncode == 0, result.output
    assert (
        "the config's EarlyStopping on val_acc gives no mode, so Lightning's default min applies"
        in result.stderr
    )
    assert "best.ckpt keeps the highest val_acc, a score by its name" in result.stderr
    # resumed from the run's own config.yaml, which writes out the EarlyStopping's default mode: still max
    resumed = cli("fit", "--run", "r", "--resume", "auto", "--trainer.max_epochs", "3")
    assert resumed.returncode == 0, resumed.output
    best = torch.load(tmp_path / "runs" / "classifier" / "r" / "checkpoints" / "best.ckpt", weights_only=True)
    (kept,) = [key for key in best["callbacks"] if key.startswith("RunCheckpoint")]
    assert kept.startswith("RunCheckpoint{'monitor': 'val_acc', 'mode': 'max',"), kept


def test_monitor_moves_the_packaged_early_stopping_onto_its_metric(cli, tmp_path) -> None:
    """``--monitor val_acc`` kept best.ckpt on val_acc while the packaged EarlyStopping stopped on val_loss."""
    import yaml

    from cli_helpers import TINY_TRAINER

    result = cli("fit", *TINY_TRAINER, "--run", "m", "--monitor", "val_acc")
    assert result.returncode == 0, result.output
    assert (
        "--monitor val_acc: the packaged early stopping follows it too (mode max), not val_loss"
        in result.stderr
    )
    config = yaml.safe_load((tmp_path / "runs" / "classifier" / "m" / "config.yaml").read_text())
    (stopper,) = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("EarlyStopping")]
    assert (stopper["init_args"]["monitor"], stopper["init_args"]["mode"]) == ("val_acc", "max")
    # a config's own EarlyStopping is the user's word: left where it is
    (tmp_path / "es.yaml").write_text(
        "trainer:\n  callbacks:\n  - class_path: EarlyStopping\n    init_args:\n      monitor: val_loss\n"
    )
    own = cli("fit", "-c", "es.yaml", *TINY_TRAINER, "--run", "o", "--monitor", "val_acc")
    assert own.returncode == 0 and "follows it too" not in own.stderr, own.output


def test_the_closest_logged_name_is_the_first_loaders_before_one_spelt_alike():
    """With two validation loaders Lightning logs val_loss/dataloader_idx_0 and _1: the hint named train_loss,
    which would keep the checkpoint of the lowest training loss."""
    from litforge.callbacks.monitor_mode import closest_logged

    logged = ["train_loss", "val_f1", "val_loss/dataloader_idx_1", "val_loss/dataloader_idx_0"]
    assert closest_logged("val_loss", logged) == "val_loss/dataloader_idx_0"
    assert closest_logged("val_los", ["train_loss", "val_loss"]) == "val_loss"
    assert closest_logged("val_iou", ["train_loss"]) is None


def test_the_unlogged_monitor_note_suggests_a_metric_of_the_same_stage(tmp_path) -> None:
    """A model logging val_acc and train_loss, fitted with the default --monitor val_loss: the hint named
    train_loss (spelt alike), whose best checkpoint is the one that fits the training data best."""
    from types import SimpleNamespace

    from litforge.callbacks.run_checkpoint import RunCheckpoint

    def hint(monitor: str, *logged: str) -> str:
        trainer = SimpleNamespace(callback_metrics=dict.fromkeys(logged, torch.tensor(0.0)))
        return RunCheckpoint(tmp_path, monitor=monitor)._logged_instead(trainer)

    assert (
        hint("val_loss", "train_loss", "val_acc")
        == "it logs: train_loss, val_acc; --monitor val_acc picks it"
    )
    assert hint("val_los", "val_loss", "val_acc").endswith("; did you mean val_loss?")
    assert hint("val_loss", "train_loss") == "it logs: train_loss; --monitor train_loss picks it"
    assert hint("val/loss", "val/acc", "val/f1", "val/auc").endswith("--monitor val/f1 or val/acc picks it")
    two_loaders = hint("val_loss", "val/acc/dataloader_idx_0", "val/loss/dataloader_idx_0", "train/loss")
    assert two_loaders.endswith("--monitor val/loss/dataloader_idx_0 or val/acc/dataloader_idx_0 picks it")
    assert hint("val_iou") == "it logs: nothing"


def test_a_configs_monitor_moves_the_written_out_packaged_early_stopping_and_an_own_one_replaces_it(
    cli, tmp_path
) -> None:
    """tune's best.yaml writes the packaged EarlyStopping out beside ``monitor: val/loss``: a fit of it stopped
    on val_loss, which the model never logged (so never); ``--trainer.callbacks+=EarlyStopping`` of the
    user's ran beside the packaged one, which stopped the run first."""
    import yaml

    from cli_helpers import TINY_TRAINER

    packaged = (
        "  - class_path: lightning.pytorch.callbacks.EarlyStopping\n    init_args:\n      monitor: val_loss\n"
    )
    (tmp_path / "best.yaml").write_text(
        f"monitor: val_acc\nmonitor_mode: max\ntrainer:\n  callbacks:\n{packaged}      patience: 5\n      strict: false\n"
    )
    moved = cli("fit", "-c", "best.yaml", *TINY_TRAINER, "--run", "b")
    assert moved.returncode == 0, moved.output
    assert "note: monitor val_acc: the packaged early stopping follows it too (mode max)" in moved.stderr
    config = yaml.safe_load((tmp_path / "runs" / "classifier" / "b" / "config.yaml").read_text())
    (stopper,) = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("EarlyStopping")]
    assert (stopper["init_args"]["monitor"], stopper["init_args"]["mode"]) == ("val_acc", "max")
    own = cli("fit", *TINY_TRAINER, "--run", "own", "--trainer.callbacks+=EarlyStopping",
              "--trainer.callbacks.monitor=val_acc", "--trainer.callbacks.mode=max")  # fmt: skip
    assert own.returncode == 0, own.output
    assert "note: your EarlyStopping on val_acc replaces the packaged one on val_loss" in own.stderr
    config = yaml.safe_load((tmp_path / "runs" / "classifier" / "own" / "config.yaml").read_text())
    stoppers = [
        c["init_args"]["monitor"]
        for c in config["trainer"]["callbacks"]
        if "EarlyStopping" in c["class_path"]
    ]
    assert stoppers == ["val_acc"]
