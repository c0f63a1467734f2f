"""The fit config a search runs on, parsed by the same parser as ``litforge fit`` (nothing is trained).

``litforge tune --config configs/digits.yaml --space configs/digits_search.yaml`` checks every space key
here before the first trial, and writes ``best.yaml`` from here after the last one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jsonargparse import Namespace

from litforge.errors import UsageError
from litforge.tune.space import SearchSpace, as_override, overrides

_RUN_KEYS = ("experiment", "run", "resume")


class _Parsed(Exception):
    """Stops ``LitforgeCLI`` right after parsing, carrying the parsed CLI."""

    def __init__(self, cli: Any) -> None:
        super().__init__("parsed")
        self.cli = cli


def _parse(fit_args: list[str]) -> Any:
    """The ``fit`` parser of ``LitforgeCLI`` (built once, used for every check and for best.yaml)."""
    from litforge.engine.lightning_cli import LitforgeCLI

    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)

    class ParseOnlyCLI(LitforgeCLI):
        def before_instantiate_classes(self) -> None:
            raise _Parsed(self)

    try:
        ParseOnlyCLI(["fit", *fit_args])
    except _Parsed as parsed:
        return parsed.cli._parser("fit")
    raise AssertionError("LitforgeCLI did not stop after parsing")  # pragma: no cover


def config_key(config: Namespace, key: str) -> str:
    """``model.lr`` -> ``model.init_args.lr`` when ``model`` is chosen by ``class_path``."""
    head, _, rest = key.partition(".")
    section = config.get(head)
    if (
        rest
        and isinstance(section, Namespace)
        and "class_path" in section
        and not rest.startswith("init_args")
    ):
        return f"{head}.init_args.{rest}"
    return key


class FitConfig:
    """The user's fit command (``--config`` plus fit flags), validated against a search space.

    Args:
        fit_args: fit arguments after ``fit``: ``["--config", FILE, "--trainer.max_epochs", "5"]``.
        space: the search space whose keys must exist in the config.
        seed: the seed every trial uses when the config's ``seed_everything`` is not a fixed integer.
    """

    def __init__(self, fit_args: list[str], space: SearchSpace, seed: int) -> None:
        self.parser = _parse(fit_args)
        self.fit_args = list(fit_args)
        config = self._parse_fit(self.fit_args)
        if not isinstance(config.get("seed_everything"), int) or isinstance(config.seed_everything, bool):
            # A trial must be reproducible from best.yaml, so its seed is fixed.
            self.fit_args += ["--seed_everything", str(seed)]
        for param in space.params:
            if config_key(config, param.key) not in config:
                raise UsageError(
                    f"params.{param.key}: no such key in the fit config ({_known_keys(config, param.key)})"
                )
        # Type-check every key with values it will take (e.g. a float for an int parameter fails here).
        for param in space.params:
            for value in param.choices or (param.low, param.high):
                try:
                    self._parse_fit([*self.fit_args, *as_override(param.key, value)])
                except UsageError as error:
                    raise UsageError(
                        f"params.{param.key}: the fit config rejects {value!r}: {error}"
                    ) from None

    def _parse_fit(self, args: list[str]) -> Namespace:
        return self.parser.parse_args(args)

    def resolve(self, values: dict[str, Any]) -> Namespace:
        """The full fit config with ``values`` applied, as ``litforge fit`` would see it."""
        try:
            return self._parse_fit([*self.fit_args, *overrides(values)])
        except UsageError as error:
            raise UsageError(f"search space: {error}") from None

    def dump(self, values: dict[str, Any], path: Path) -> None:
        """Write a complete fit config with ``values`` applied (``best.yaml``), atomically."""
        config = self.resolve(values).clone()
        for key in _RUN_KEYS:
            if key in config:
                config[key] = None
        text = self.parser.dump(config, skip_none=False)
        header = "# litforge tune: the best trial's config. Train it with: litforge fit --config best.yaml\n"
        write_atomic(path, header + text)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _known_keys(config: Namespace, key: str) -> str:
    head = key.partition(".")[0]
    section = config.get(head)
    if isinstance(section, Namespace):
        inner = section.get("init_args") if "class_path" in section else section
        if isinstance(inner, Namespace):
            names = sorted(k for k in inner.__dict__ if not k.startswith("_"))
            return f"{head} has: {', '.join(names)}"
    sections = sorted(k for k in config.__dict__ if not k.startswith("_"))
    return f"top-level keys: {', '.join(sections)}"
