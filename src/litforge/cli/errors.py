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

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class LitforgeError(Exception):
    """Base of litforge's user-facing errors; ``exit_code`` is what the process exits with."""

    exit_code = EXIT_FAILED


class UsageError(LitforgeError):
    """The user's input is wrong: a bad flag, config key, value or a missing file (exit 2)."""

    exit_code = EXIT_USAGE


class JobFailed(LitforgeError):
    """The job ran and failed: a check failed, a parity test failed, no trial finished (exit 1)."""

    exit_code = EXIT_FAILED


def debug_enabled(argv: list[str] | None = None) -> bool:
    """True when ``--debug`` is on the command line or ``LITFORGE_DEBUG`` is set to a true value."""
    return "--debug" in (argv or []) or os.environ.get("LITFORGE_DEBUG", "").lower() in {"1", "true", "yes"}


def fail(error: BaseException, debug: bool) -> NoReturn:
    """Print ``error`` as one line (or its traceback under debug) and exit with its code."""
    if debug:
        traceback.print_exception(error)
    else:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"litforge: error: {message}", file=sys.stderr)
    sys.exit(getattr(error, "exit_code", EXIT_FAILED))


# Exceptions raised by user input when building models and data from a config (bad values, missing files).
USER_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    IsADirectoryError,
    ValueError,
    TypeError,
)


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
