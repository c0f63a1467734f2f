"""``litforge fit --help`` shows the defaults litforge uses, not Lightning's.

Lightning's option descriptions state its own defaults in prose ("Default: ``50``."); where litforge's
packaged default sets another value, that sentence is dropped, so the ``(default: ...)`` jsonargparse
prints after each option is the only, and true, statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lightning.pytorch.cli import LightningArgumentParser

from litforge._compat.argparse import parser_actions

_PROSE_DEFAULT = re.compile(
    r"\s*(Default: ``[^`]*``\.?|Disabled by default \(None\)\.?"
    r"|If both max_epochs and max_steps are not specified, defaults to ``max_epochs = 1000``\.)"
)


def drop_overridden_defaults(parser: LightningArgumentParser, keys: Iterable[str]) -> None:
    """Remove Lightning's prose defaults from the help of the options ``keys`` (dotted names)."""
    wanted = set(keys)
    for action in parser_actions(parser):
        if action.dest in wanted and action.help:
            action.help = _PROSE_DEFAULT.sub("", action.help)
