"""What a user can cause: one error type (a clear message, a non-zero exit) and one way
to show a warning (one `warning:` line)."""

from __future__ import annotations

import argparse
import sys
import warnings


class DisbenchError(Exception):
    """An error the user can fix: bad input, a missing file, an unwritable directory.

    The message says what was wrong and what would be right; the CLI prints it
    without a traceback and exits with `exit_code`.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def first_line(err: BaseException, limit: int = 200) -> str:
    """An exception's message in one line for a one-line error: its first line, at most
    `limit` characters; its type's name when it says nothing."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


class ArgumentParser(argparse.ArgumentParser):
    """A command's parser whose usage errors end in one `DisbenchError`: what was wrong,
    then the usage it was given."""

    def error(self, message: str):
        raise DisbenchError(f"{message}\nusage: {self.usage}")


class DisbenchWarning(UserWarning):
    """A warning of disbench's own; shown as one `warning:` line (see `warnings_as_lines`)."""


def warn(message: str) -> None:
    """One `warning:` line on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def warnings_as_lines() -> None:
    """Show disbench's own warnings as one `warning:` line, without the file path and the
    echoed source line of Python's default format; other warnings keep that format."""
    default = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if issubclass(category, DisbenchWarning):
            return f"warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning
