"""Act at a step boundary only once the module's own ``on_train_batch_end`` has run.

Lightning calls the callbacks' ``on_train_batch_end`` first and the LightningModule's after them. A step
checkpoint saved (or a preemption stop made) from a callback's hook holds the state from before the
module's hook: an EMA or SWA copy updated there, one update behind the weights, and a resume loses that
update for good.

    after_module_batch_end(pl_module, lambda: self.save(trainer))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.utilities.model_helpers import is_overridden

_HOOK = "on_train_batch_end"


def after_module_batch_end(pl_module: L.LightningModule, action: Callable[[], None]) -> None:
    """Run ``action`` right after ``pl_module.on_train_batch_end`` for this batch, or at once when the
    module does not override it. The hook is wrapped once, on the instance, and unwrapped when called."""
    if not is_overridden(_HOOK, pl_module, parent=L.LightningModule):
        action()
        return
    hook = getattr(pl_module, _HOOK)  # the module's method, or the wrapper of an earlier action

    def then_act(*args: Any, **kwargs: Any) -> Any:
        try:
            result = hook(*args, **kwargs)
        finally:
            pl_module.__dict__.pop(_HOOK, None)
        action()
        return result

    pl_module.__dict__[_HOOK] = then_act  # an instance attribute: nn.Module's __setattr__ is not involved
