"""The argparse base of litforge's own subcommands (tune, export, serve, check, predict --artifact).

Errors become ``UsageError`` (one line, exit 2) instead of argparse's usage dump. ``--debug`` is taken
off the command line once, by the dispatcher (``litforge.cli.main``); it is listed here for ``--help``.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from litforge._compat.argparse import flag_suggestion
from litforge.errors import UsageError


class StatedDefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """``(default: X)`` after an option's help, unless the help already says its default or it has none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or action.default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that raises ``UsageError`` naming the command instead of exiting."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # a misspelt flag is an error, never a silent match
        super().__init__(**kwargs)
        self.add_argument("--debug", action="store_true", help="show tracebacks on errors")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        self._argv = list(args) if args is not None else None  # for a misspelt required flag's suggestion
        return super().parse_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("litforge ")  # the line already starts "litforge: error:"
        suggestion = flag_suggestion(self, message, getattr(self, "_argv", None))
        raise UsageError(f"{command}: {message}{suggestion}")
