"""argparse internals: the list of a parser's actions (argparse has no public accessor)."""

from __future__ import annotations

import argparse


def parser_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's actions, as ``argparse.ArgumentParser._actions`` holds them."""
    return list(parser._actions)
