"""A resume that asks for more training than the restored LR schedule was built for is refused, in one line.

``litforge fit --run r --resume auto --trainer.max_epochs 8`` after a run of 4 epochs: ``configure_optimizers()``
builds a ``OneCycleLR(total_steps=trainer.estimated_stepping_batches)`` of the new length, then Lightning
loads the checkpoint's scheduler state over it, horizon included. Past the old horizon ``OneCycleLR`` raises
("Tried to step 33 times") and ``CosineAnnealingLR`` climbs back to the top learning rate, silently. This
callback notes each scheduler's horizon as built (``on_fit_start``) and, once the state is restored
(``on_train_start``), refuses (``UsageError``, exit 2) a restored horizon shorter than the built one, before a
step is trained: the run stays as it was. A restored horizon longer than the built one (a resume with a smaller
``max_epochs``) is allowed with a note: training ends before the schedule does.
"""

from __future__ import annotations

import sys

import lightning.pytorch as L
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR

from litforge.errors import UsageError

# Schedules that misbehave past their horizon, and the attribute that holds it.
_HORIZONS = {OneCycleLR: "total_steps", CosineAnnealingLR: "T_max"}


class ScheduleHorizon(L.Callback):
    """Refuse a resume whose restored LR schedule ends before the training asked for (module docstring)."""

    def __init__(self) -> None:
        self.built: list[int | None] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.built = [_horizon(config.scheduler) for config in trainer.lr_scheduler_configs]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for config, built in zip(trainer.lr_scheduler_configs, self.built, strict=False):
            restored = _horizon(config.scheduler)
            if built is None or restored is None or restored == built:
                continue
            name, unit = type(config.scheduler).__name__, "steps" if config.interval == "step" else "epochs"
            if restored > built:  # a shorter run than the schedule: the user asked for it; said, not refused
                if trainer.is_global_zero:
                    print(
                        f"litforge: note: the checkpoint's {name} was built for {restored} {unit} and this fit "
                        f"ends after {built}: training stops before the schedule does, its learning rate mid-way",
                        file=sys.stderr,
                    )
                continue
            past_end = (
                "fails" if isinstance(config.scheduler, OneCycleLR) else "raises the learning rate again"
            )
            raise UsageError(
                f"the checkpoint's {name} was built for {restored} {unit} and this fit asks for {built}: past "
                f"its end it {past_end}. A schedule cannot be lengthened on resume: train a new run (another "
                "--run) with the longer settings, or resume with the run's own --trainer.max_epochs/max_steps"
            )


def _horizon(scheduler: object) -> int | None:
    attribute = next((a for kind, a in _HORIZONS.items() if isinstance(scheduler, kind)), None)
    value = getattr(scheduler, attribute, None) if attribute else None
    return value if isinstance(value, int) else None
