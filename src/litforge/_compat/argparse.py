"""argparse internals: the list of a parser's actions (argparse has no public accessor), and the
"did you mean" hint built from it."""

from __future__ import annotations

import argparse
import difflib
import re


def parser_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's actions, as ``argparse.ArgumentParser._actions`` holds them."""
    return list(parser._actions)


def flag_suggestion(parser: argparse.ArgumentParser, message: str, argv: list[str] | None = None) -> str:
    """`` (did you mean --port?)`` for argparse's ``unrecognized arguments: --prot 8000``; for ``the following
    arguments are required: --ckpt``, the flag of ``argv`` that is a misspelling of one (`` (--ckp: did you
    mean --ckpt?)``); else ``""``."""
    flags = [flag for action in parser_actions(parser) for flag in action.option_strings]
    unknown = re.match(r"unrecognized arguments: (--[\w.-]+)", message.strip())
    if unknown:
        close = difflib.get_close_matches(unknown.group(1), flags, n=1, cutoff=0.8)
        close = close or _nested_flags_named(unknown.group(1), flags)
        return f" (did you mean {' or '.join(close)}?)" if close else ""
    required = re.match(r"the following arguments are required: (.*)", message.strip())
    if not required or not argv:
        return ""
    wanted = [flag.strip() for flag in required.group(1).split(",")]
    given = [arg.split("=")[0] for arg in argv if arg.startswith("--") and arg.split("=")[0] not in flags]
    for typed in given:
        if close := difflib.get_close_matches(typed, wanted, n=1, cutoff=0.7):
            return f" ({typed}: did you mean {close[0]}?)"
    return ""


def _nested_flags_named(typed: str, flags: list[str]) -> list[str]:
    """``--max_epochs`` -> ``[--trainer.max_epochs]``: the dotted flags whose last part is the typed name
    (at most two, else none: a name found in many groups says nothing)."""
    name = typed.lstrip("-")
    nested = [flag for flag in flags if "." in flag and flag.rsplit(".", 1)[-1] == name]
    return nested if len(nested) <= 2 else []
