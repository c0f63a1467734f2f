"""Which way ``best.ckpt`` and a search optimize a metric when no mode or direction is given."""

from __future__ import annotations

import pytest
from jsonargparse import Namespace
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from litforge.callbacks.monitor_mode import configured_mode, configured_monitors, mode_by_name
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
    def __init__(self, callbacks: list) -> None:
        self.callbacks = callbacks

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
    ],
)
def test_a_space_without_direction_optimizes_the_way_the_config_or_the_name_says(
    space, callbacks, direction
) -> None:
    parsed = parse_space({**space, "params": {"model.lr": {"type": "float", "low": 0.001, "high": 0.1}}})
    assert with_direction(parsed, _Fit(callbacks)).direction == direction
