"""What the operator tool says besides its output: notes and errors on stderr, and its exit statuses."""

from __future__ import annotations

import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CliError(Exception):
    """A problem reported as one clear line, without a traceback, and the exit status it ends with."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


def note(message: str) -> None:
    """A line for the person at the terminal (stderr): stdout keeps only what a script would read."""
    print(message, file=sys.stderr)
