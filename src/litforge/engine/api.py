"""The engine's public functions: what ``cli``, ``tune``, ``check`` and benchmarks call.

from litforge.engine.api import parse_fit_config, run_command
fit = parse_fit_config(["--config", "configs/digits.yaml"])      # typed, nothing built or trained
config = fit.with_values({"model.lr": 3e-3, "run": "trial-1"})  # type-checked by the same parser
run_command(config)                                               # trains like `litforge fit`
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
from jsonargparse import Namespace

from litforge.errors import UsageError


@dataclass(frozen=True)
class FitConfig:
    """A parsed ``fit`` config and the parser that checks values set into it."""

    parser: Any  # the fit subcommand's LightningArgumentParser
    config: Namespace  # ``fit``'s keys: seed_everything, trainer, model, data, experiment, run, ...

    def key(self, dotted: str) -> str:
        """``model.lr`` -> ``model.init_args.lr`` when ``model`` is chosen by ``class_path``, at every level:
        ``model.optimizer.lr`` -> ``model.init_args.optimizer.init_args.lr`` for an injected optimizer."""
        parts, level = [], self.config
        for part in dotted.split("."):
            if (
                isinstance(level, Namespace)
                and "class_path" in level
                and part not in ("class_path", "init_args")
            ):
                parts.append("init_args")
                level = level.get("init_args")
            parts.append(part)
            level = level.get(part) if isinstance(level, Namespace) else None
        return ".".join(parts)

    def has(self, dotted: str) -> bool:
        return self.key(dotted) in self.config

    def with_values(self, values: dict[str, Any]) -> Namespace:
        """A copy of the config with ``values`` (dotted keys) set, type-checked by the fit parser.

        Raises:
            UsageError: a value the key's type does not take (one line naming the key).
        """
        nested: dict[str, Any] = {}
        for dotted, value in values.items():
            *parents, leaf = self.key(dotted).split(".")
            level = nested
            for part in parents:
                level = level.setdefault(part, {})
            level[leaf] = value
        return self.parser.parse_object(nested, cfg_base=self.config.clone())

    def dump(self, config: Namespace) -> str:
        """The YAML text of ``config`` (complete, ``None`` values kept)."""
        return self.parser.dump(config, skip_none=False)


def parse_fit_config(args: list[str]) -> FitConfig:
    """Parse ``litforge fit`` arguments (no subcommand) into a typed config: the packaged default, class
    defaults and ``--config`` files applied as ``fit`` would, but nothing instantiated or run."""
    from litforge.engine.lightning_cli import LitforgeCLI

    cli = LitforgeCLI(["fit", *args], parse_only=True)
    assert cli.subcommand_parser is not None
    return FitConfig(cli.subcommand_parser, cli.config.fit)


def run_command(
    command: list[str] | Namespace,
    *,
    subcommand: str = "fit",
    extra_callbacks: list[Any] | None = None,
    quiet: bool = False,
) -> Any:
    """Run ``fit``/``validate``/``test``/``predict`` like the command line and return the finished
    ``LitforgeCLI`` (``.trainer``, ``.model``, ``.run_dir``).

    Args:
        command: command-line arguments (``["fit", "--config", FILE, ...]``) or a complete typed config of
            ``subcommand`` (e.g. from ``FitConfig.with_values``).
        subcommand: the subcommand a typed ``command`` runs.
        extra_callbacks: callbacks added on top of the config's and litforge's defaults.
        quiet: no summary table, closing lines or learning-curve PNG (a search's trials).
    """
    from litforge.engine.lightning_cli import LitforgeCLI

    if isinstance(command, Namespace):
        command = Namespace(subcommand=subcommand, **{subcommand: command})
    elif not command or command[0] not in ("fit", "validate", "test", "predict"):
        raise UsageError(f"run_command: expected a subcommand first, got {command[:1]}")
    return LitforgeCLI(command, extra_callbacks=extra_callbacks, quiet=quiet)


def instantiate_model_and_data(
    args: list[str],
) -> tuple[L.LightningModule, L.LightningDataModule | None, int | None]:
    """``--config FILE | --model ... --data ...`` (no subcommand) -> the model and datamodule ``fit`` would
    build: same parser, short names, packaged default, links and ``seed_everything``, but no trainer; and
    the seed the config sets (``seed_everything: 7``), ``None`` when it sets none. ``--run NAME`` or
    ``--ckpt_path FILE`` builds that run's model and data, from its config.yaml (as ``test`` does), fresh:
    the checkpoint's weights are not loaded."""
    from litforge.engine.lightning_cli import LitforgeCLI

    cli = LitforgeCLI(_with_named_runs_config(args), run=False)
    seed = cli.config.get("seed_everything")
    configured = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    return cli.model, cli.datamodule, configured


def _with_named_runs_config(args: list[str]) -> list[str]:
    """``--run NAME`` / ``--ckpt_path FILE`` / ``--experiment E`` -> the arguments with that run's
    config.yaml in front (a run that does not exist is refused, as ``test`` refuses it)."""
    import sys

    from litforge.engine.config_sources import scan
    from litforge.engine.run_resolution import with_run_config

    line = scan(list(args))
    if line.asks_help or not any(flag in line.run_flags for flag in ("--run", "--ckpt_path", "--experiment")):
        return args
    with_run = with_run_config(line)
    if with_run.config_files and with_run.config_files[0] not in line.config_files:
        print(
            f"litforge: note: checking the model and data of {with_run.config_files[0]} "
            "(built fresh: the checks never load the checkpoint's weights)",
            file=sys.stderr,
        )
    return with_run.args
