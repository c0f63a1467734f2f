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
    error (``val_dice_loss``, ``val_top1_err`` are lower-is-better), or when it holds the name of a
    torchmetrics class that says higher is better (``val_MulticlassF1Score``, as a ``MetricCollection`` of a
    list logs it; ``val_StructuralSimilarityIndexMeasure``), else ``None``."""
    words = _words(metric)
    if words & LOSS_WORDS:
        return None
    return "max" if words & SCORE_WORDS or _torchmetrics_higher_is_better(metric) else None


# A word of a metric name, CamelCase split too: val_MulticlassF1Score -> val, multiclass, f1, score
_WORD = re.compile(r"[A-Z]+[0-9]*(?![a-z])|[A-Z]?[a-z]+[0-9]*|[0-9]+")
_TORCHMETRICS_PACKAGES = (
    "",
    ".classification",
    ".regression",
    ".segmentation",
    ".retrieval",
    ".image",
    ".text",
    ".audio",
    ".detection",
    ".clustering",
    ".nominal",
    ".multimodal",
)


def _words(metric: str) -> set[str]:
    """The name's words split at non-alphanumerics (``val_IoU`` -> iou) and, besides, at CamelCase
    (``val_MulticlassF1Score`` -> multiclass, f1, score)."""
    return set(re.split(r"[^a-z0-9]+", metric.lower())) | {word.lower() for word in _WORD.findall(metric)}


def _torchmetrics_higher_is_better(metric: str) -> bool:
    """Whether a CamelCase part of ``metric`` names a torchmetrics metric class whose ``higher_is_better`` is
    True (torchmetrics is imported only for such a name)."""
    import importlib

    for token in re.split(r"[^A-Za-z0-9]+", metric):
        if not token[:1].isupper():
            continue
        for package in _TORCHMETRICS_PACKAGES:
            try:
                found = getattr(importlib.import_module(f"torchmetrics{package}"), token, None)
            except Exception:  # torchmetrics missing, or a domain needing an extra package
                continue
            if isinstance(found, type) and hasattr(found, "higher_is_better"):
                return found.higher_is_better is True
    return False


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


DEFAULT_MONITOR = "val_loss"  # the metric best.ckpt follows when nothing names one

# The packaged default's EarlyStopping (configs/default.yaml), found by its settings: in a run's config.yaml
# or tune's best.yaml it is written out as any other callback.
PACKAGED_EARLY_STOPPING = {"monitor": DEFAULT_MONITOR, "patience": 5, "strict": False}


def _is_packaged_early_stopping(callback: Any) -> bool:
    args = _get(callback, "init_args") or {}
    return (
        _is_config(callback)
        and class_monitor_mode(callback)[0] == "EarlyStopping"
        and all(_get(args, key) == value for key, value in PACKAGED_EARLY_STOPPING.items())
        and (_get(args, "mode") or "min") == "min"
    )


def move_packaged_early_stopping(
    callbacks: list[Any], monitor: str | None, mode: str | None, flag: str = "--monitor"
) -> list[str]:
    """The packaged default's ``EarlyStopping`` (on ``val_loss``) beside a metric of the user's: with an
    EarlyStopping of the user's as well (``--trainer.callbacks+=EarlyStopping``), it is dropped; else, with
    ``monitor`` another metric (``--monitor val_recall_at_1``, or a config's ``monitor:``), its config moves
    onto that metric and mode (``mode`` given, else the name's, else min), so training stops on the metric
    best.ckpt keeps, and the run's config.yaml says so. Changes ``callbacks`` in place; returns the notes."""
    packaged = next((c for c in callbacks if _is_packaged_early_stopping(c)), None)
    if packaged is None:
        return []
    own = [c for c in callbacks if c is not packaged and class_monitor_mode(c)[0] == "EarlyStopping"]
    if own:
        callbacks.remove(packaged)
        return [
            f"your EarlyStopping on {class_monitor_mode(own[0])[1]} replaces the packaged one on {DEFAULT_MONITOR}"
        ]
    if not monitor or monitor == DEFAULT_MONITOR:
        return []
    chosen = mode or mode_by_name(monitor) or "min"
    args = _get(packaged, "init_args")
    args["monitor"], args["mode"] = monitor, chosen
    return [
        f"{flag} {monitor}: the packaged early stopping follows it too (mode {chosen}), not {DEFAULT_MONITOR}"
    ]
