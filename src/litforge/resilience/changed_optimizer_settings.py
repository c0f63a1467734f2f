"""A resume that changes the model's arguments (``litforge fit --resume auto --model.lr 0.1``) trains with the
optimizer settings those arguments give, not the ones saved in the checkpoint's optimizer state.

Lightning builds the optimizers from ``configure_optimizers()`` (with the new ``lr``) and then loads the
checkpoint's optimizer state over them, settings included: the run would say ``lr=0.1`` and train at the old
rate. This callback notes each param group's settings as ``configure_optimizers()`` built them
(``on_fit_start``) and, once the state is restored (``on_train_start``), puts back every setting that
differs: ``weight_decay``, ``betas``, a plain ``lr``. Under an LR scheduler (a group with ``initial_lr``)
the schedule keeps its progress: the current ``lr`` is scaled by the new over the old ``initial_lr``, the
schedulers' ``base_lrs`` follow, and ``betas``/``momentum`` (which ``OneCycleLR`` cycles) stay as restored.
The optimizer's moments and step counts stay as restored. litforge adds it only to resumed fits whose
command line changes a model argument.
"""

from __future__ import annotations

import sys
from typing import Any

import lightning.pytorch as L


class ChangedOptimizerSettings(L.Callback):
    """Keep the optimizer settings that ``configure_optimizers()`` builds on a resume (see the module docstring)."""

    def __init__(self, changed: dict[str, Any] | None = None) -> None:
        self.changed = changed  # the new values of the changed model arguments (None: any setting may follow)
        self.built: list[list[dict[str, Any]]] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.built = [
            [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
            for optimizer in trainer.optimizers
        ]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        changes = []
        for index, (optimizer, built_groups) in enumerate(zip(trainer.optimizers, self.built, strict=False)):
            if len(optimizer.param_groups) != len(built_groups):
                continue  # another set of groups than the checkpoint's: Lightning would have refused it
            for number, (group, built) in enumerate(zip(optimizer.param_groups, built_groups, strict=True)):
                where = (
                    f"optimizer {index} group {number}"
                    if len(trainer.optimizers) + len(built_groups) > 2
                    else ""
                )
                changes += _restore_built(group, built, where, self.changed)
                if _scheduled(group, built) and not _same(group["initial_lr"], built["initial_lr"]):
                    changes.append(
                        _rescale_schedule(trainer, optimizer, number, group, built["initial_lr"], where)
                    )
        for change in changes:
            print(f"litforge: note: the optimizer takes {change}", file=sys.stderr)


def _restore_built(
    group: dict[str, Any], built: dict[str, Any], where: str, changed: dict[str, Any] | None
) -> list[str]:
    """Put back the built settings that the restored state changed. ``lr`` without a scheduler's
    ``initial_lr`` moves in training too (``ReduceLROnPlateau``, code of the user's): it is put back only
    when its built value is one of the ``changed`` arguments' new values (``--model.lr 0.1``)."""
    changes = []
    for key, value in built.items():
        if key in _SCHEDULED and _scheduled(group, built):
            continue  # the schedule's progress (lr: _rescale_schedule; OneCycleLR cycles the momentum too)
        if key == "lr" and changed is not None and not any(_same(value, new) for new in changed.values()):
            continue  # not what a changed argument asked for: a plateau's reductions stay
        if key in group and not _same(group[key], value):
            changes.append(f"{key}={value}{' in ' + where if where else ''} (checkpoint: {group[key]})")
            group[key] = value
    return changes


def _rescale_schedule(
    trainer: L.Trainer, optimizer: Any, number: int, group: dict[str, Any], initial_lr: float, where: str
) -> str:
    """The schedule at its restored progress, from the new starting lr."""
    old_initial, old_lr = group["initial_lr"], group["lr"]
    group["lr"] = old_lr * initial_lr / old_initial if old_initial else initial_lr
    group["initial_lr"] = initial_lr
    for config in trainer.lr_scheduler_configs:
        base_lrs = getattr(config.scheduler, "base_lrs", None)
        if getattr(config.scheduler, "optimizer", None) is optimizer and base_lrs and number < len(base_lrs):
            base_lrs[number] = initial_lr
    where = f" in {where}" if where else ""
    return f"initial_lr={initial_lr}{where}, lr {group['lr']:.6g} at this point of the schedule (checkpoint: {old_initial}, {old_lr:.6g})"


_SCHEDULED = ("lr", "initial_lr", "betas", "momentum")  # what LR schedulers move on their own


def _scheduled(group: dict[str, Any], built: dict[str, Any]) -> bool:
    return "initial_lr" in group and "initial_lr" in built


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # values == cannot compare (tensors of several elements): leave them restored
        return True
