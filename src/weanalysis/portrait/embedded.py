"""The embedded store as a :class:`~weanalysis.portrait.source.PortraitSource`.

Active users of ``[b, e]`` are the union of the day summaries; each visit column is the value of
the latest day in the window where it is known — a scatter over dense uids in day order, so later
days overwrite earlier ones. Person columns come from the person logs.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from weanalysis.dims import COLUMN, PERSON_COLUMNS, VISIT_COLUMNS
from weanalysis.portrait.source import Window, WindowCounts
from weanalysis.store import AppSnapshot, Store
from weanalysis.store.summaries import FIELDS, person_values, unpack
from weanalysis.store.view import active_prefix

_FIELD_MASKS = [np.int64(mask << shift) for shift, mask in FIELDS.values()]


def _keep_known(before: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Field by field: the new value where known, else the one before."""
    out = new.copy()
    for m in _FIELD_MASKS:
        unknown = (new & m) == 0
        out[unknown] = (out[unknown] & ~m) | (before[unknown] & m)
    return out


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

    def counts(self, begin: int, end: int) -> WindowCounts | None:
        """A 1-day window's counts from the store's per-day aggregate, while it is exact."""
        if begin != end:
            return None
        got = self.snap.day_counts(end)
        return None if got is None else WindowCounts(*got)

    def window(self, begin: int, end: int) -> Window:
        snap = self.snap
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
        if len(days) == 1:
            users, packed, _ = snap.day_packed(days[0])
            users = np.asarray(users)
        else:
            users, packed = self._scatter(days)
        packed = np.asarray(packed)
        values = {c.name: unpack(packed, c.name) for c in VISIT_COLUMNS}
        first = np.asarray(snap.first_day)[users] if len(users) else np.zeros(0, np.int32)
        return Window(users, first, values)

    def _scatter(self, days: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """One packed slot per user; the days in ascending order, so a later day overwrites an
        earlier one — except a column unknown that day (code 0), which keeps the earlier value:
        the few rows with an unknown column are saved before the day's scatter and restored
        after it (cheaper than a masked scatter of every row)."""
        n = self.snap.num_users
        slot = np.zeros(n, dtype=np.int64)
        for d in days:
            uid, packed, partial = self.snap.day_packed(d)
            uid, packed = np.asarray(uid), np.asarray(packed)
            if len(partial) == 0:
                slot[uid] = packed
                continue
            pu = uid[partial]
            before = slot[pu]
            slot[uid] = packed
            slot[pu] = _keep_known(before, packed[partial])
        users = np.flatnonzero(slot).astype(np.uint32)
        return users, slot[users]

    def person_values(self, column: str, users: np.ndarray, end_day: int) -> np.ndarray:
        vp = self._view_persons
        if vp is not None and users is vp[0] and end_day == vp[1]:
            return vp[2][column]  # the window came from the view: its users' values as of e
        values = person_values(self.snap.person_runs(column), users, end_day)
        return values.astype(COLUMN[column].dtype, copy=False)

    def value_names(self, column: str) -> list[str | None]:
        if column != "dev":
            raise KeyError(f"column {column} has fixed names")
        return self.snap.device_names
