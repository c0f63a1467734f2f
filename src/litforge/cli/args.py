"""argparse for litforge's own subcommands: errors become ``UsageError`` (one line, exit 2)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from litforge.cli.errors import UsageError


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that raises ``UsageError`` instead of printing usage and exiting."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)
        self.add_argument("--debug", action="store_true", help="show tracebacks on errors")

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")
