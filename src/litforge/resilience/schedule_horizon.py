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

import math
import sys

import lightning.pytorch as L
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, OneCycleLR

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
        for config in trainer.lr_scheduler_configs:
            if (moved := _lambda_moved(config.scheduler)) is not None and trainer.is_global_zero:
                print(f"litforge: note: {moved}", file=sys.stderr)
        for config, built in zip(trainer.lr_scheduler_configs, self.built, strict=False):
            restored = _horizon(config.scheduler)
            if built is not None and restored == built and trainer.ckpt_path:
                _past_a_fixed_horizon(trainer, config, restored)
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


def _past_a_fixed_horizon(trainer: L.Trainer, config: object, horizon: int) -> None:
    """A resume asking for more epochs (steps) than a schedule of a fixed length holds, the same length as
    built now (a config's ``lr_scheduler: CosineAnnealingLR`` with ``T_max: 6`` and ``--trainer.max_epochs
    10``): OneCycleLR would fail mid-run, refused now; a cosine climbs back up, said."""
    by_step = getattr(config, "interval", "epoch") == "step"
    asked = trainer.estimated_stepping_batches if by_step else trainer.max_epochs
    if asked in (None, -1) or not math.isfinite(asked) or horizon >= asked:
        return
    scheduler = getattr(config, "scheduler", None)
    name, unit = type(scheduler).__name__, "steps" if by_step else "epochs"
    said = f"the checkpoint's {name} ends after {horizon} {unit} and this fit trains for {int(asked)}"
    if isinstance(scheduler, OneCycleLR):
        raise UsageError(
            f"{said}: past its end it fails. Resume with the run's own --trainer.max_epochs/max_steps, or train "
            "a new run (another --run) with the longer schedule"
        )
    if trainer.is_global_zero:
        print(
            f"litforge: note: {said}: past its end its learning rate climbs back up (a longer T_max, in a new "
            "run, decays over the whole fit)",
            file=sys.stderr,
        )


def _horizon(scheduler: object) -> int | None:
    attribute = next((a for kind, a in _HORIZONS.items() if isinstance(scheduler, kind)), None)
    value = getattr(scheduler, attribute, None) if attribute else None
    return value if isinstance(value, int) else None


def _lambda_moved(scheduler: object) -> str | None:
    """A ``LambdaLR`` rebuilt with another shape than the checkpoint's (transformers'
    ``get_linear_schedule_with_warmup`` sized by ``estimated_stepping_batches``, on a resume that trains
    longer): its lambdas are not in the checkpoint, so the restored step meets the new lambda, and a rate
    that had decayed to 0 jumps back up. Found by the learning rate: the restored one against what the
    rebuilt lambda gives at the restored step. ``None`` when they agree (the same schedule)."""
    if not isinstance(scheduler, LambdaLR) or scheduler.last_epoch <= 0:
        return None
    step = scheduler.last_epoch
    for group, base, rule in zip(
        scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=False
    ):
        expected, restored = base * rule(step), group["lr"]
        if not math.isclose(expected, restored, rel_tol=1e-4, abs_tol=1e-6 * base):
            return (
                f"the checkpoint's LambdaLR was at lr {restored:.3g} at step {step}, the one configure_optimizers() "
                f"built now gives {expected:.3g} there: its lambda is not saved in checkpoints, so the schedule "
                "goes on in its new shape (one sized by trainer.estimated_stepping_batches is stretched over the "
                "longer fit). To keep the old one, resume with the run's own max_epochs/max_steps; to train "
                "longer on a schedule of that length, start a new run"
            )
    return None
