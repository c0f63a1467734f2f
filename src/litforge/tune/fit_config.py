"""The fit config a search runs on, parsed once by the engine (nothing is trained); trials get typed values.

``litforge tune --config configs/digits.yaml --space configs/digits_search.yaml`` checks every space key
here before the first trial, and writes ``best.yaml`` from here after the last one.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any

from jsonargparse import Namespace

from litforge.atomic_files import write_text_atomically
from litforge.engine.api import FitConfig, parse_fit_config
from litforge.errors import UsageError
from litforge.tune.space import SearchSpace

_RUN_KEYS = ("experiment", "run", "resume")


@functools.cache
def parsed_fit(fit_args: tuple[str, ...]) -> FitConfig:
    """The user's fit command parsed once per process (trial workers parse it again, once each)."""
    return parse_fit_config(list(fit_args))


class SearchConfig:
    """The user's fit command (``--config`` plus fit flags), validated against a search space.

    Args:
        fit_args: fit arguments after ``fit``: ``["--config", FILE, "--trainer.max_epochs", "5"]``.
        space: the search space whose keys must exist in the config.
        seed: the seed every trial uses when the config's ``seed_everything`` is not a fixed integer.
    """

    def __init__(self, fit_args: list[str], space: SearchSpace, seed: int) -> None:
        self.fit_args = list(fit_args)
        fit = parsed_fit(tuple(self.fit_args))
        seed_value = fit.config.get("seed_everything")
        if not isinstance(seed_value, int) or isinstance(seed_value, bool):
            # A trial must be reproducible from best.yaml, so its seed is fixed.
            self.fit_args += ["--seed_everything", str(seed)]
            fit = parsed_fit(tuple(self.fit_args))
        self.fit = fit
        where = f"{space.source}: " if space.source else ""  # the space file, as its own errors name it
        for param in space.params:
            if not fit.has(param.key):
                raise UsageError(
                    f"{where}params.{param.key}: no such key in the fit config ({_known_keys(fit, param.key)})"
                )
        # Type-check every key with values it will take (e.g. a float for an int parameter fails here).
        for param in space.params:
            for value in param.choices or (param.low, param.high):
                try:
                    fit.with_values({param.key: value})
                except UsageError as error:
                    raise UsageError(
                        f"{where}params.{param.key}: the fit config rejects {value!r}: {error}"
                    ) from None

    def resolve(self, values: dict[str, Any]) -> Namespace:
        """The full fit config with ``values`` applied, as ``litforge fit`` would see it."""
        try:
            return self.fit.with_values(values)
        except UsageError as error:
            raise UsageError(f"search space: {error}") from None

    def dump(self, values: dict[str, Any], path: Path) -> None:
        """Write a complete fit config with ``values`` applied (``best.yaml``), atomically."""
        config = self.resolve(values)
        for key in _RUN_KEYS:
            if key in config:
                config[key] = None
        header = "# litforge tune: the best trial's config. Train it with: litforge fit --config best.yaml\n"
        write_text_atomically(path, header + self.fit.dump(config))


def _known_keys(fit: FitConfig, key: str) -> str:
    """What the deepest existing part of ``key`` holds: ``model.optimizer has: lr, momentum, ...`` for a typo
    in an injected class's argument, ``model has: ...`` one level up, else the top-level keys; for
    ``optimizer.lr`` of a config without an ``optimizer:``, how to give it one."""
    section = key.split(".")[0]
    if section in ("optimizer", "lr_scheduler") and fit.config.get(section) is None:
        return (
            f"it gives no {section}: the model's configure_optimizers() builds it; add --{section} "
            f"{'torch.optim.Adam' if section == 'optimizer' else 'torch.optim.lr_scheduler.StepLR'} "
            f"or a top-level {section}: to the config, or search an argument of the model"
        )
    level, known = fit.config, []
    for part in key.split("."):
        inner = level.get("init_args") if "class_path" in level else level
        child = inner.get(part) if isinstance(inner, Namespace) else None
        if not isinstance(child, Namespace):
            break
        level, known = child, [*known, part]
    inner = level.get("init_args") if "class_path" in level else level
    if known and isinstance(inner, Namespace):
        names = sorted(k for k in inner.__dict__ if not k.startswith("_"))
        close = difflib.get_close_matches(key.split(".")[len(known)], names, n=1, cutoff=0.6)
        hint = f"; did you mean {'.'.join([*known, close[0]])}?" if close else ""
        return f"{'.'.join(known)} has: {', '.join(names)}{hint}"
    sections = sorted(k for k in fit.config.__dict__ if not k.startswith("_"))
    return f"top-level keys: {', '.join(sections)}"
