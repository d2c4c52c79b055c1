"""The one exception type a user can cause: it ends in a clear message and a non-zero exit."""


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
