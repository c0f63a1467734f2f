"""argparse internals: the list of a parser's actions (argparse has no public accessor), and the
"did you mean" hint built from it."""

from __future__ import annotations

import argparse
import difflib
import re


def parser_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's actions, as ``argparse.ArgumentParser._actions`` holds them."""
    return list(parser._actions)


def flag_suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    """`` (did you mean --port?)`` for argparse's ``unrecognized arguments: --prot 8000``, else ``""``."""
    unknown = re.match(r"unrecognized arguments: (--[\w.-]+)", message.strip())
    if not unknown:
        return ""
    flags = [flag for action in parser_actions(parser) for flag in action.option_strings]
    close = difflib.get_close_matches(unknown.group(1), flags, n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""
