"""One error taxonomy: every error weanalysis raises on purpose derives from WeanalysisError.

- :class:`UserError`: the user can fix it (a bad value, a bad file, a folder in the wrong
  state). Its message is one sentence for a person, naming what is wrong and, where it helps,
  what to do. The command line prints it as one line (``error: ...``) and exits 2, never with a
  traceback (one handler, in :mod:`weanalysis.cli.main`). The HTTP layers translate the ones
  they meet into their family's error shape (WeChat's errcode, or the dashboard's).
- :class:`InputError`: a value or a file that cannot be accepted (also a ``ValueError``, so
  that code catching ``ValueError`` keeps working).
- :class:`StoreError`: the data folder cannot be used as asked: written by another storage
  format, damaged, or read-only for a write.

Anything else that escapes is a bug: the CLI shows its traceback, the server logs it and answers
its family's "system error".
"""

from __future__ import annotations

from pathlib import Path


class WeanalysisError(Exception):
    """Base of every error weanalysis raises on purpose."""


class UserError(WeanalysisError):
    """Something the user can fix; ``str(err)`` says what (CLI: one line, exit status 2)."""

    exit_code = 2


class InputError(UserError, ValueError):
    """A value, a request or an input file that cannot be accepted."""


class SettingError(UserError):
    """A setting (command-line option or environment variable) with an unusable value."""


class StoreError(UserError):
    """The data folder cannot be used as asked."""


class StoreDamagedError(StoreError):
    """A file of the data folder is missing, truncated, zeroed or not what its manifest says.

    Names the file, so that it can be restored from a backup (or the app re-ingested).
    """

    def __init__(self, path: Path | str, what: str):
        super().__init__(
            f"damaged data folder: {path}: {what} (restore the folder from a backup, "
            "or ingest the app's records again into a new data folder)"
        )
        self.path = Path(path)
        self.what = what


class StoreReadOnlyError(StoreError):
    """A write asked of a data folder that this process may only read."""

    def __init__(self, path: Path | str, action: str = "change it"):
        super().__init__(f"the data folder {path} is read-only: cannot {action}")
        self.path = Path(path)
