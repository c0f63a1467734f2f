"""Cheaper dispatch of Lightning's per-step hooks, installed by litforge's CLI.

Lightning calls each hook on every callback, overridden or not, each inside a profiler context, and sets
``LightningModule._current_fx_name`` through ``nn.Module.__setattr__`` around every call. A training step
runs six callback hooks and about a dozen module and strategy hooks; with litforge's ~11 default
callbacks that bookkeeping cost ~0.3 ms per step on a 2-core CPU, a fifth of a small MLP's whole step
(``python benchmarks/overhead.py``). The lean dispatch does the same calls, in the same order, with the
same ``_current_fx_name``, but:

- calls a callback's hook only when its class (or the instance) overrides ``Callback``'s no-op;
- skips the profiler context when no profiler is configured (``PassThroughProfiler`` records nothing).

With a profiler (``--trainer.profiler simple``), for the monitoring-callback filter, or for anything it
does not recognise, it hands over to Lightning's own functions. ``LITFORGE_LEAN_HOOKS=0`` turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from lightning.pytorch import Callback
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.trainer import call

_ORIGINAL = {
    name: getattr(call, name)
    for name in ("_call_callback_hooks", "_call_lightning_module_hook", "_call_strategy_hook")
}
_TARGETS_ATTR = "_litforge_hook_targets"  # per trainer: hook name -> (callbacks, those that override it)


def install() -> bool:
    """Route Lightning's hook calls through the lean dispatch (idempotent); ``False`` when turned off."""
    if os.environ.get("LITFORGE_LEAN_HOOKS", "1") == "0":
        uninstall()
        return False
    call._call_callback_hooks = _call_callback_hooks
    call._call_lightning_module_hook = _call_lightning_module_hook
    call._call_strategy_hook = _call_strategy_hook
    return True


def uninstall() -> None:
    """Restore Lightning's own hook dispatch."""
    for name, function in _ORIGINAL.items():
        setattr(call, name, function)


def overrides(callback: Any, hook_name: str) -> bool:
    """Whether calling ``hook_name`` on ``callback`` can do anything (``Callback``'s hooks are no-ops)."""
    if not isinstance(callback, Callback) or hook_name in vars(callback):
        return True
    return getattr(type(callback), hook_name, None) is not getattr(Callback, hook_name, None)


def _targets(trainer: Any, hook_name: str) -> list[Any]:
    callbacks = tuple(trainer.callbacks)
    cache = trainer.__dict__.setdefault(_TARGETS_ATTR, {})
    cached = cache.get(hook_name)
    if cached is None or cached[0] != callbacks:  # callbacks compare by identity
        cached = cache[hook_name] = (callbacks, [cb for cb in callbacks if overrides(cb, hook_name)])
    return cached[1]


def _lean(trainer: Any) -> bool:
    return type(trainer.profiler) is PassThroughProfiler


def _named_call(pl_module: Any, hook_name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with ``pl_module._current_fx_name`` set to ``hook_name`` meanwhile, as Lightning
    does. It is a plain attribute, so it goes straight into the instance dict (no ``nn.Module.__setattr__``)."""
    state = pl_module.__dict__
    previous, state["_current_fx_name"] = state.get("_current_fx_name"), hook_name
    output = fn(*args, **kwargs)
    state["_current_fx_name"] = previous
    return output


def _call_callback_hooks(
    trainer: Any, hook_name: str, *args: Any, monitoring_callbacks: bool | None = None, **kwargs: Any
) -> None:
    if monitoring_callbacks is not None or not _lean(trainer):
        _ORIGINAL["_call_callback_hooks"](
            trainer, hook_name, *args, monitoring_callbacks=monitoring_callbacks, **kwargs
        )
        return
    targets = _targets(trainer, hook_name)
    if not targets:
        return
    pl_module = trainer.lightning_module

    def call_each() -> None:
        for callback in targets:
            getattr(callback, hook_name)(trainer, pl_module, *args, **kwargs)

    if pl_module is None:
        call_each()
    else:
        _named_call(pl_module, hook_name, call_each)


def _call_lightning_module_hook(
    trainer: Any, hook_name: str, *args: Any, pl_module: Any = None, **kwargs: Any
) -> Any:
    pl_module = pl_module or trainer.lightning_module
    if pl_module is None or not _lean(trainer):
        return _ORIGINAL["_call_lightning_module_hook"](
            trainer, hook_name, *args, pl_module=pl_module, **kwargs
        )
    fn = getattr(pl_module, hook_name)
    return _named_call(pl_module, hook_name, fn, *args, **kwargs) if callable(fn) else None


def _call_strategy_hook(trainer: Any, hook_name: str, *args: Any, **kwargs: Any) -> Any:
    pl_module = trainer.lightning_module
    if pl_module is None or not _lean(trainer):
        return _ORIGINAL["_call_strategy_hook"](trainer, hook_name, *args, **kwargs)
    fn = getattr(trainer.strategy, hook_name)
    return _named_call(pl_module, hook_name, fn, *args, **kwargs) if callable(fn) else None
