"""Exit codes and error reporting shared by every subcommand.

0 success; 1 the job ran and failed; 2 the user's input was wrong. Errors print as one line on stderr;
``--debug`` or ``LITFORGE_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from litforge.errors import (  # noqa: F401  (re-exported for the subcommand modules)
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    USER_INPUT_ERRORS,
    JobFailed,
    LitforgeError,
    UsageError,
)


def debug_enabled(argv: list[str] | None = None) -> bool:
    """True when ``--debug`` is on the command line or ``LITFORGE_DEBUG`` is set to a true value."""
    return "--debug" in (argv or []) or os.environ.get("LITFORGE_DEBUG", "").lower() in {"1", "true", "yes"}


def fail(error: BaseException, debug: bool) -> NoReturn:
    """Print ``error`` as one line (or its traceback under debug) and exit with its code."""
    if debug:
        traceback.print_exception(error)
    else:
        message = " ".join(str(error).split()) or type(error).__name__
        kind = getattr(error, "kind", "error")  # "stopped" for a preemption or Ctrl+C: nothing went wrong
        print(f"litforge: {kind}: {message}", file=sys.stderr)
        if detail := getattr(error, "detail", ""):  # e.g. the user's frames of a failed fit
            print(detail.rstrip("\n"), file=sys.stderr)
    sys.exit(getattr(error, "exit_code", EXIT_FAILED))


def run_guarded(handler: Callable[[], int | None], argv: list[str]) -> NoReturn:
    """Run ``handler`` and turn litforge errors into clean exits; anything else is a crash (exit 1)."""
    debug = debug_enabled(argv)
    try:
        code = handler()
    except LitforgeError as error:
        fail(error, debug)
    except KeyboardInterrupt:
        print("litforge: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or EXIT_OK)
