"""Command-line parsing for litforge's LightningCLI: the packaged default config, one-line errors.

litforge fit --trainer.max_epochs abc
litforge: error: config key "trainer.max_epochs": expected int, got 'abc'
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import NoReturn

from lightning.pytorch.cli import LightningArgumentParser

from litforge.cli.errors import LitforgeError, UsageError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


def quiet_lightning_noise() -> None:
    """Drop Lightning messages that are advertising or irrelevant to litforge's run folder layout."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not str(record.getMessage()).startswith("💡 Tip")
    )
    logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector").addFilter(
        lambda record: "`weights_only` was not set" not in str(record.getMessage())
    )
    # litforge writes config.yaml into the run folder before the CSV logger creates it.
    warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # sys.argv mirrors ``args`` so that DDP's subprocess launcher re-runs the same command in each rank.
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
    warnings.filterwarnings("ignore", message=r"'set_vital' is deprecated")  # torchdata's loader
    # test/predict need none of fit's resume-only callbacks (RNGState); predictions.csv numbers rows itself.
    warnings.filterwarnings(
        "ignore", message=r"Be aware that when using `ckpt_path`, callbacks used to create"
    )
    warnings.filterwarnings(
        "ignore", message=r"Couldn't infer the batch indices fetched from your dataloader"
    )


class LitforgeArgumentParser(LightningArgumentParser):
    """Raises ``UsageError`` with a one-line message instead of printing usage and exiting."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        raise UsageError(condense_parser_message(message))


_NOISE = (
    "Does not validate against any of the",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Expected a NoneType",
    "Parser key",
    "Expected a path but",
)


def condense_parser_message(message: str) -> str:
    """Reduce jsonargparse's nested, multi-line messages to one line naming the key and the problem."""
    if message.startswith("Problems parsing config"):  # invalid YAML: keep the parser's line and column
        detail = " ".join(
            message.removeprefix("Problems parsing config:").replace('"<unicode string>", ', "").split()
        )
        return f"--config: not valid YAML: {detail}"
    lines = [
        re.sub(r'^Parser key "[^"]+":\s*', "", line.strip().lstrip("-").strip())
        for line in message.splitlines()
    ]
    lines = [re.sub(r"<class '([\w.]+)'>", r"\1", line) for line in lines if line]
    key_match = re.search(r'(?:Parser key|Key) "([^"]+)"', message)
    useful = [line for line in lines if not line.startswith(_NOISE)]
    given = next(
        (line.removeprefix("Given value:").strip() for line in useful if line.startswith("Given value:")),
        None,
    )
    expected = [line for line in useful if line.startswith("Expected a")]
    others = [line for line in useful if not line.startswith(("Expected a", "Given value:"))]
    import_path = next(
        (line for line in expected if line.startswith("Expected a dot import path string:")), None
    )
    if import_path:
        name = import_path.rsplit(":", 1)[-1].strip()
        detail = f"unknown class {name!r}: use a litforge short name (e.g. Classifier) or a full import path"
    elif others:
        detail = others[0]
    elif expected:
        types = " or ".join(e.removeprefix("Expected a ").strip() for e in expected)
        detail = f"expected {types}, got {given!r}" if given is not None else f"expected {types}"
    else:
        detail = lines[-1] if lines else message
    if key_match and key_match.group(1) == "config":
        return f"--config: {detail}"
    if key_match:
        return f'config key "{key_match.group(1)}": {detail}'
    return detail


def with_default_config(args: list[str], has_subcommand: bool = True) -> list[str]:
    """Insert the packaged default config (after the subcommand, if any) when the user gives no ``--config``."""
    if any(a in ("-c", "--config") or a.startswith("--config=") for a in args):
        return args
    at = 1 if has_subcommand else 0
    return [*args[:at], "--config", str(DEFAULT_CONFIG), *args[at:]]


def litforge_cause(error: BaseException) -> LitforgeError | None:
    """The first ``LitforgeError`` in ``error``'s cause/context chain, if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, LitforgeError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
