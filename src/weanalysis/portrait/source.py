"""The seam between the portrait engine and whatever holds the records.

The engine (:mod:`weanalysis.portrait.engine`) never reads files: it asks a
:class:`PortraitSource` for the window's active users with their visit columns and first-visit
days, and for person columns as of a day; then it counts. The embedded store is one source
(:mod:`weanalysis.portrait.embedded`), DuckDB over the stored raw records another
(:mod:`weanalysis.portrait.duck`, used to cross-check the store). Columns and their codes are the
ones declared in :mod:`weanalysis.dims.table`.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import NamedTuple, Protocol

import numpy as np


class Window(NamedTuple):
    """The active users of a window ``[b, e]``, one entry per user."""

    users: np.ndarray  # the source's user numbers, unique (opaque to the engine)
    first_day: np.ndarray  # int32: the day of each user's first visit ever
    values: dict[str, np.ndarray]  # visit column -> the code of the user's latest known value


class WindowCounts(NamedTuple):
    """A window's answer as counts: users per code of each column, active and new."""

    active_total: int
    new_total: int
    active: dict[str, np.ndarray]  # column -> users per code (index = code)
    new: dict[str, np.ndarray]


class PortraitSource(Protocol):
    """What the engine needs from the records of one app."""

    def days(self) -> list[int]:
        """The days with visits, ascending."""
        ...

    def token(self) -> Hashable:
        """Changes whenever the records change (a cached answer keeps the token it was made at)."""
        ...

    def unchanged_since(self, token: Hashable, end_day: int) -> bool:
        """True when nothing that a window ending on ``end_day`` reads changed since ``token``."""
        ...

    def window(self, begin: int, end: int) -> Window:
        """The active users of ``[begin, end]`` with their visit columns."""
        ...

    def person_values(self, column: str, users: np.ndarray, end_day: int) -> np.ndarray:
        """The latest known value (0 unknown) of a person column as of the end of ``end_day``."""
        ...

    def counts(self, begin: int, end: int) -> WindowCounts | None:
        """The window's answer as counts when the source holds it already (the engine then
        skips the per-user work); None otherwise."""
        ...

    def retained_from(self) -> int | None:
        """The first day of the app's retained range (None: every record is kept); a window
        beginning before it raises
        :class:`~weanalysis.store.retention.WindowBeforeRetention` in :meth:`window`."""
        ...

    def value_names(self, column: str) -> list[str | None]:
        """Names of the codes of a column numbered by the data (devices); None = unknown."""
        ...
