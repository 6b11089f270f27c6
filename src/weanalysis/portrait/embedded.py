"""The embedded store as a :class:`~weanalysis.portrait.source.PortraitSource`.

Active users of ``[b, e]`` are the union of the day summaries; each visit column is the value of
the latest day in the window where it is known — a scatter over dense uids in day order, so later
days overwrite earlier ones. Person columns come from the person logs.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from weanalysis.dims import COLUMN, PERSON_COLUMNS, VISIT_COLUMNS
from weanalysis.portrait.source import Window, WindowCounts
from weanalysis.store import AppSnapshot, Store
from weanalysis.store.retention import check_window, retained_from
from weanalysis.store.summaries import FIELDS, person_values, unpack
from weanalysis.store.view import active_prefix

_FIELD_MASKS = [np.int64(mask << shift) for shift, mask in FIELDS.values()]


def _unknown_fields(packed: np.ndarray) -> np.ndarray:
    """Per row, the bits of the fields whose code is unknown (0): where an earlier value shows
    through (one pass per field, no boolean indexing)."""
    out = np.zeros(len(packed), dtype=np.int64)
    for m in _FIELD_MASKS:
        out |= np.where((packed & m) == 0, m, 0)
    return out


# Windows with at least this many rows to scatter (or users to look up) are computed by two
# threads over halves of the uid space (numpy releases the GIL in these loops).
PARALLEL_ROWS = 1 << 20
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(2, thread_name_prefix="portrait")
        return _POOL


def _window_part(
    loaded: list[tuple[np.ndarray, np.ndarray, np.ndarray]], first_day: np.ndarray, lo: int, hi: int
) -> Window:
    """The users ``lo <= uid < hi`` of a window from its days' summaries (ascending days): one
    packed slot per user, a later day overwriting an earlier one — except a column unknown that
    day (code 0), which keeps the earlier value: the few rows with an unknown column are saved
    before the day's scatter and restored after it (cheaper than a masked scatter of every
    row)."""
    slot = np.zeros(hi - lo, dtype=np.int64)
    for uid, packed, partial in loaded:
        a, b = (int(i) for i in np.searchsorted(uid, (lo, hi)))
        # numpy scatters with native (intp) indices about twice as fast as with uint32
        u, p = np.asarray(uid[a:b]).astype(np.intp) - lo, np.asarray(packed[a:b])
        pa, pb = (int(i) for i in np.searchsorted(partial, (a, b)))
        part = np.asarray(partial[pa:pb]) - a
        if len(part) == 0:
            slot[u] = p
            continue
        pu = u[part]
        before = slot[pu]
        slot[u] = p
        new = p[part]
        slot[pu] = new | (before & _unknown_fields(new))
    at = np.flatnonzero(slot)
    got = slot[at]
    users = at + lo
    return Window(
        users.astype(np.uint32),
        first_day[users] if len(users) else np.zeros(0, np.int32),
        {c.name: unpack(got, c.name) for c in VISIT_COLUMNS},
    )


class EmbeddedSource:
    def __init__(self, snap: AppSnapshot):
        self.snap = snap
        self._view_persons: tuple | None = None

    @classmethod
    def of(cls, store: Store, appid: str) -> EmbeddedSource:
        return cls(store.snapshot(appid))

    def days(self) -> list[int]:
        return self.snap.day_numbers()

    def token(self) -> Hashable:
        return self.snap.version

    def unchanged_since(self, token: Hashable, end_day: int) -> bool:
        return isinstance(token, int) and self.snap.unchanged_up_to(token, end_day)

    def is_current(self) -> bool:
        return self.snap.is_current()

    def retained_from(self) -> int | None:
        return retained_from(self.snap.manifest)

    def counts(self, begin: int, end: int) -> WindowCounts | None:
        """A 1-day window's counts from the store's per-day aggregate, while it is exact."""
        check_window(self.snap.manifest, begin)
        if begin != end:
            return None
        got = self.snap.day_counts(end)
        return None if got is None else WindowCounts(*got)

    def window(self, begin: int, end: int) -> Window:
        snap = self.snap
        check_window(snap.manifest, begin)  # records before the retained range are gone
        v = snap.view(begin, end)
        if v is not None:  # a window ending on the view's day: a prefix of its arrays
            k = active_prefix(v, begin)
            values = {}
            for c in VISIT_COLUMNS:
                code = v[c.name][:k]
                values[c.name] = np.where(v[c.name + "_day"][:k] >= begin, code, 0).astype(
                    code.dtype, copy=False
                )
            users = v["uid"][:k]
            self._view_persons = (users, end, {c.name: v[c.name][:k] for c in PERSON_COLUMNS})
            return Window(users, v["first_day"][:k], values)
        days = [d for d in snap.day_numbers() if begin <= d <= end]
        loaded = [snap.day_packed(d) for d in days]  # memory maps, checked
        n = snap.num_users
        rows = sum(len(day[0]) for day in loaded)
        first_day = np.asarray(snap.first_day)
        if rows < PARALLEL_ROWS:
            parts = [_window_part(loaded, first_day, 0, n)]
        else:  # users are independent: two threads over the two halves of the uid space
            halves = ((0, n // 2), (n // 2, n))
            parts = list(_pool().map(lambda r: _window_part(loaded, first_day, *r), halves))
        if len(parts) == 1:
            return parts[0]
        return Window(
            np.concatenate([p.users for p in parts]),
            np.concatenate([p.first_day for p in parts]),
            {c: np.concatenate([p.values[c] for p in parts]) for c in parts[0].values},
        )

    def person_values(self, column: str, users: np.ndarray, end_day: int) -> np.ndarray:
        vp = self._view_persons
        if vp is not None and users is vp[0] and end_day == vp[1]:
            return vp[2][column]  # the window came from the view: its users' values as of e
        runs = self.snap.person_runs(column)
        # intp: numpy gathers with native indices about twice as fast as with uint32
        users = users.astype(np.intp)
        if len(users) < PARALLEL_ROWS:
            values = person_values(runs, users, end_day)
        else:  # two threads over the two halves of the (sorted) users
            halves = np.array_split(users, 2)
            values = np.concatenate(
                list(_pool().map(lambda u: person_values(runs, u, end_day), halves))
            )
        return values.astype(COLUMN[column].dtype, copy=False)

    def value_names(self, column: str) -> list[str | None]:
        if column != "dev":
            raise KeyError(f"column {column} has fixed names")
        return self.snap.device_names
