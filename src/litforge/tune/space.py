"""The search-space file shared by both backends: ``litforge tune --space configs/digits_search.yaml``.

```yaml
metric: val_loss            # any metric the model logs each validation epoch
direction: minimize         # or maximize
n_trials: 30                # optional defaults; command-line flags win
sampler: tpe                # tpe | random | cmaes | grid
pruner: rungs               # rungs | successive-halving | hyperband | median | none
rungs: "1:4,6:3"            # for pruner: rungs (epochs:K, keep the best 1/K; see litforge.tune.rungs)
params:
  model.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  model.hidden_dim: {type: int, low: 32, high: 256, step: 32}
  data.batch_size: {type: categorical, choices: [32, 64, 128]}
```

Keys are the dotted keys of the fit config (``model.lr`` is ``model.init_args.lr``); every entry is
checked here and against the fit config (``litforge.tune.fit_config``) before any trial runs.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from litforge.engine.config_sources import UniqueKeyLoader
from litforge.errors import UsageError
from litforge.tune.rungs import Rung, parse_rungs

SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("none", "median", "hyperband", "successive-halving", "rungs")
DIRECTIONS = ("minimize", "maximize")
TYPES = ("float", "int", "categorical")
_PARAM_FIELDS = {"type", "low", "high", "log", "step", "choices"}
_TOP_FIELDS = {"metric", "direction", "params", "n_trials", "sampler", "pruner", "rungs", "seed"}


@dataclass(frozen=True)
class Param:
    """One searched config key: ``float``/``int`` in ``[low, high]`` (optionally ``log`` or ``step``) or
    one of ``choices``."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def optuna_choices(self) -> tuple[Any, ...]:
        """The choices as Optuna stores them: a list or mapping choice (``[32, 16]``) becomes its compact
        JSON text, since Optuna's storages and plots take only ``None``/bool/int/float/str choices."""
        return tuple(_optuna_choice(choice) for choice in self.choices)

    def from_optuna(self, value: Any) -> Any:
        """The choice an Optuna value stands for (the list behind ``"[32, 16]"``); other values as given."""
        if self.type != "categorical":
            return value
        return next((c for c in self.choices if _optuna_choice(c) == value), value)

    def to_optuna(self, value: Any) -> Any:
        """The value as Optuna stores it (the inverse of ``from_optuna``)."""
        return _optuna_choice(value) if self.type == "categorical" else value

    def optuna_grid(self) -> list[Any]:
        return list(self.optuna_choices) if self.type == "categorical" else self.grid()

    def grid(self) -> list[Any]:
        """The values a grid search tries: the choices, or ``low, low+step, ..., high``."""
        if self.type == "categorical":
            return list(self.choices)
        if self.step is None:
            raise UsageError(
                f"params.{self.key}: the grid sampler needs 'step' (or type categorical) for each param"
            )
        assert self.low is not None and self.high is not None
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        values = [self.low + i * self.step for i in range(count)]
        return [int(v) for v in values] if self.type == "int" else values


def _optuna_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, (bool, int, float, str)):
        return choice
    return json.dumps(choice, separators=(", ", ": "))


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, validated space file."""

    metric: str
    direction: str
    params: tuple[Param, ...]
    n_trials: int | None = None
    sampler: str | None = None
    pruner: str | None = None
    rungs: tuple[Rung, ...] | None = None
    seed: int | None = None
    source: Path | None = field(default=None, compare=False)
    direction_given: bool = True  # False: no ``direction:`` in the file (``with_direction`` decides it)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a space file; any problem raises ``UsageError`` naming the file and the entry."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--space {path}: a folder, expected a YAML file")
    if not path.is_file():
        raise UsageError(f"--space: no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"--space {path}: not a text file (the byte at offset {error.start} is not UTF-8); "
            "expected a YAML space file"
        ) from None
    except OSError as error:
        raise UsageError(f"--space {path}: cannot read it: {error.strerror}") from None
    try:
        raw = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise UsageError(f"--space {path}: not valid YAML: {' '.join(str(error).split())}") from None
    return parse_space(raw, source=path)


def parse_space(raw: Any, source: Path | None = None) -> SearchSpace:
    """Validate the mapping of a space file (see the module docstring for the format)."""
    where = f"{source}: " if source else ""
    if raw is None:
        raise UsageError(f"{where}the file is empty; a space file has 'metric', 'direction' and 'params'")
    if not isinstance(raw, dict):
        raise UsageError(
            f"{where}expected a mapping with 'metric', 'direction' and 'params', got {_yaml_kind(raw)}"
        )
    unknown = sorted(set(raw) - _TOP_FIELDS)
    if unknown:
        raise UsageError(f"{where}unknown entry '{unknown[0]}' (expected one of {sorted(_TOP_FIELDS)})")
    metric = raw.get("metric")
    if not isinstance(metric, str) or not metric:
        raise UsageError(f"{where}'metric' must name a logged metric, e.g. metric: val_loss")
    direction = raw.get("direction", "minimize")
    _check_choice(where, "direction", direction, DIRECTIONS)
    for name, options in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        if raw.get(name) is not None:
            _check_choice(where, name, raw[name], options)
    for name, least, kind in (("n_trials", 1, "positive"), ("seed", 0, "non-negative")):
        value = raw.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise UsageError(f"{where}'{name}' must be a {kind} integer, got {value!r}")
    params = raw.get("params")
    if not isinstance(params, dict) or not params:
        raise UsageError(
            f"{where}'params' must map config keys to ranges, e.g. model.lr: {{type: float, ...}}"
        )
    return SearchSpace(
        metric=metric,
        direction=direction,
        params=tuple(_parse_param(where, str(key), spec) for key, spec in params.items()),
        n_trials=raw.get("n_trials"),
        sampler=raw.get("sampler"),
        pruner=raw.get("pruner"),
        rungs=None if raw.get("rungs") is None else parse_rungs(raw["rungs"], where=f"{where}'rungs:'"),
        seed=raw.get("seed"),
        source=source,
        direction_given="direction" in raw,
    )


def _yaml_kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}
    return kinds.get(type(value), type(value).__name__)


def _check_choice(where: str, name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        text = str(value)
        close = [o for o in options if text and o.startswith(text)] or difflib.get_close_matches(
            text, options, 1
        )
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"{where}'{name}: {value}' is not one of {', '.join(options)}{hint}")


def _parse_param(where: str, key: str, spec: Any) -> Param:
    entry = f"{where}params.{key}"
    if not isinstance(spec, dict):
        raise UsageError(f"{entry}: expected a mapping like {{type: float, low: 0.001, high: 0.1}}")
    unknown = sorted(set(spec) - _PARAM_FIELDS)
    if unknown:
        raise UsageError(f"{entry}: unknown field '{unknown[0]}' (expected {sorted(_PARAM_FIELDS)})")
    kind = spec.get("type")
    if kind not in TYPES:
        raise UsageError(f"{entry}: unknown type {kind!r} (expected float, int or categorical)")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UsageError(f"{entry}: 'choices' must be a non-empty list")
        extra = sorted({"low", "high", "log", "step"} & set(spec))
        if extra:
            raise UsageError(f"{entry}: '{extra[0]}' does not apply to a categorical param")
        return Param(key, kind, choices=tuple(choices))
    if "choices" in spec:
        raise UsageError(f"{entry}: 'choices' needs type categorical")
    low, high = spec.get("low"), spec.get("high")
    if kind == "float":  # YAML 1.1 reads 1e-4 (no dot) as text; the fit config's parser takes it as a number
        low, high = _read_as_float(low), _read_as_float(high)
    number = int if kind == "int" else (int, float)
    for name, value in (("low", low), ("high", high)):
        if not isinstance(value, number) or isinstance(value, bool):
            raise UsageError(
                f"{entry}: '{name}' must be {'an integer' if kind == 'int' else 'a number'}{_got(value)}"
            )
    if low >= high:
        raise UsageError(f"{entry}: low ({low}) must be below high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UsageError(f"{entry}: 'log' must be true or false")
    if log and low <= 0:
        raise UsageError(f"{entry}: log: true needs positive bounds, got low={low}")
    step = _read_as_float(spec.get("step")) if kind == "float" else spec.get("step")
    if step is not None:
        if not isinstance(step, number) or isinstance(step, bool) or step <= 0:
            raise UsageError(
                f"{entry}: 'step' must be a positive {'integer' if kind == 'int' else 'number'}{_got(step)}"
            )
        if log:
            raise UsageError(f"{entry}: 'step' and 'log' cannot be combined")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _read_as_float(value: Any) -> Any:
    """``"1e-4"`` -> ``0.0001``; anything else as it is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _got(value: Any) -> str:
    """``, got the string '1e-4' (YAML reads ...)``: YAML 1.1 reads 1e-4 (no dot) as text, not a number."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return f", got the string {value!r}"
    mantissa, _, exponent = value.lower().partition("e")
    fixed = f"{mantissa}.0e{exponent}" if exponent and "." not in mantissa else value
    return f", got the string {value!r} (YAML reads {value} as text: write {fixed})"
