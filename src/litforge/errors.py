"""litforge's exception types and exit codes (the ground floor: imports nothing from litforge).

0 success; 1 the job ran and failed; 2 the user's input was wrong. Library code raises these; the command
line (``litforge.cli``) turns them into one line on stderr and the exit code.
"""

from __future__ import annotations

import re

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class LitforgeError(Exception):
    """Base of litforge's user-facing errors; ``exit_code`` is what the process exits with.

    The message is one line; ``detail`` (optional, printed below it) holds a few lines of context, such
    as the frames of the user's code that raised.
    """

    exit_code = EXIT_FAILED

    def __init__(self, message: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class UsageError(LitforgeError):
    """The user's input is wrong: a bad flag, config key, value or a missing file (exit 2)."""

    exit_code = EXIT_USAGE


class JobFailed(LitforgeError):
    """The job ran and failed: a check failed, a parity test failed, no trial finished (exit 1)."""

    exit_code = EXIT_FAILED


# The start of a note litforge adds to a user's exception (``error.add_note``): shown after its message.
HINT = "(litforge: "


# Exceptions raised by user input when building models and data from a config (bad values, missing files).
USER_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError,
    IsADirectoryError,
    ValueError,
    TypeError,
)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes some runtimes put in messages


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message as one line of at most ``limit`` characters."""
    text = " ".join(_ANSI.sub("", str(error)).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
