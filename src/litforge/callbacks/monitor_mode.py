"""Which way a monitored metric is better: what the config's callbacks say of it, else what its name says.

``best.ckpt`` (``litforge fit --monitor val_iou``) and a search (``metric: val_iou`` without ``direction``)
kept the *lowest* IoU: Lightning's ``mode`` defaults to ``min`` whatever the metric. A ``ModelCheckpoint`` or
``EarlyStopping`` of the config on the same metric knows better, and so does a name that is a score.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

# Words of a metric name (val_iou, val/acc_top1, test-f1) that mean higher is better.
SCORE_WORDS = frozenset(
    "acc accuracy iou miou jaccard dice f1 fbeta auc auroc ap map precision recall r2 bleu rouge psnr ssim "  # noqa: SIM905
    "score top1 top5 mcc kappa ndcg mrr hit hitrate sensitivity specificity tpr pearson spearman corr".split()
)
# Words that make a name a loss or an error whatever score it is of (val_dice_loss, val_acc_error).
LOSS_WORDS = frozenset("loss err error mse mae rmse nll ppl perplexity wer cer dist distance".split())  # noqa: SIM905
_MONITORING = ("ModelCheckpoint", "EarlyStopping")


def closest_logged(metric: str, logged: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The logged name closest to ``metric``: its first loader's (``val_loss/dataloader_idx_0``, Lightning's name
    for it with several validation loaders) before one spelt alike (``train_loss``); ``None`` if none is."""
    names = [str(name) for name in logged]
    per_loader = sorted(name for name in names if name.startswith(f"{metric}/dataloader_idx_"))
    close = per_loader or difflib.get_close_matches(metric, names, n=1, cutoff=cutoff)
    return close[0] if close else None


def mode_by_name(metric: str) -> str | None:
    """``max`` when a word of ``metric`` names a score (``val_iou``, ``val_acc``) and none names a loss or an
    error (``val_dice_loss``, ``val_top1_err`` are lower-is-better), else ``None``."""
    words = set(re.split(r"[^a-z0-9]+", metric.lower()))
    return "max" if words & SCORE_WORDS and not words & LOSS_WORDS else None


def class_monitor_mode(callback: Any) -> tuple[str, Any, str]:
    """``(class name, monitored metric or None, mode)`` of a callback: built, or its config (``class_path`` +
    ``init_args``, as a mapping or Namespace)."""
    if _is_config(callback):
        args = _get(callback, "init_args") or {}
        name = str(_get(callback, "class_path") or "").rsplit(".", 1)[-1]
        return name, _get(args, "monitor"), str(_get(args, "mode") or "min")
    return type(callback).__name__, getattr(callback, "monitor", None), str(getattr(callback, "mode", "min"))


def configured_monitors(callbacks: list[Any]) -> list[tuple[str, str, str]]:
    """``(kind, monitor, mode)`` of each ``ModelCheckpoint``/``EarlyStopping`` in ``callbacks`` (built, or their
    config) that monitors a metric; a built subclass counts as its Lightning base."""
    found = []
    for callback in callbacks:
        kind, monitor, mode = class_monitor_mode(callback)
        if not _is_config(callback):
            kind = next((cls.__name__ for cls in type(callback).__mro__ if cls.__name__ in _MONITORING), kind)
        if kind in _MONITORING and monitor:
            found.append((kind, str(monitor), mode))
    return found


def configured_mode(monitors: list[tuple[str, str, str]], metric: str) -> str | None:
    """The mode of the first of ``monitors`` (from ``configured_monitors``) on ``metric``."""
    return next((mode for _, monitor, mode in monitors if monitor == metric), None)


def unstated_min_on_scores(monitors: list[tuple[str, str, str]], stated: set[str] | None) -> set[str]:
    """The metrics of ``monitors`` whose callback has ``min`` only as Lightning's default (their metric is not
    in ``stated``, the metrics given a mode in the user's own words) while the name says a score: an
    ``EarlyStopping(monitor: val_recall_at_10)`` without ``mode: max`` treats a falling recall as progress."""
    if stated is None:
        return set()
    return {
        metric
        for _, metric, mode in monitors
        if mode == "min" and metric not in stated and mode_by_name(metric)
    }


def unstated_mode_notes(monitors: list[tuple[str, str, str]], stated: set[str] | None) -> list[str]:
    """A note for each such callback, naming the fix."""
    unstated = unstated_min_on_scores(monitors, stated)
    return [
        f"the config's {kind} on {metric} gives no mode, so Lightning's default min applies: it takes a "
        f"lower {metric} as better, while the name says a score (add mode: max to it)"
        for kind, metric, _ in monitors
        if metric in unstated
    ]


def _is_config(callback: Any) -> bool:
    return isinstance(callback, dict) or hasattr(callback, "class_path")


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else getattr(node, key, None)


def move_packaged_early_stopping(callbacks: list[Any], monitor: str, mode: str | None) -> str | None:
    """``litforge fit --monitor val_recall_at_1`` with the packaged default's ``EarlyStopping`` (on
    ``val_loss``): set its config on the typed metric and mode (``mode`` typed, else the name's, else min),
    so training stops on the metric best.ckpt keeps, and the run's config.yaml says so. Returns the note."""
    for callback in callbacks:
        kind, watched, _ = class_monitor_mode(callback)
        if kind == "EarlyStopping" and _is_config(callback) and watched and watched != monitor:
            chosen = mode or mode_by_name(monitor) or "min"
            args = _get(callback, "init_args")
            args["monitor"], args["mode"] = monitor, chosen
            return f"--monitor {monitor}: the packaged early stopping follows it too (mode {chosen}), not {watched}"
    return None
