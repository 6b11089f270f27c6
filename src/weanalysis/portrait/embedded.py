"""The embedded store as a :class:`~weanalysis.portrait.source.PortraitSource`.

Active users of ``[b, e]`` are the union of the day summaries; each visit column is the value of
the latest day in the window where it is known — a scatter over dense uids in day order, so later
days overwrite earlier ones. Person columns come from the person logs.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from weanalysis.dims import COLUMN, VISIT_COLUMNS
from weanalysis.dims.table import DEV
from weanalysis.portrait.source import Window
from weanalysis.store import AppSnapshot, Store
from weanalysis.store.summaries import person_values


class EmbeddedSource:
    def __init__(self, snap: AppSnapshot):
        self.snap = snap

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

    def window(self, begin: int, end: int) -> Window:
        snap = self.snap
        # records before the retained range are gone: refuse, never a smaller answer
        snap.check_window(begin)
        days = [d for d in snap.day_numbers() if begin <= d <= end]
        if len(days) == 1:
            s = self._day(days[0])
            users = np.asarray(s["uid"])
            values = {c.name: np.asarray(s[c.name]) for c in VISIT_COLUMNS}
        else:
            users, values = self._scatter(days)
        first = np.asarray(snap.first_day)[users] if len(users) else np.zeros(0, np.int32)
        return Window(users, first, values)

    def _day(self, day: int) -> dict[str, np.ndarray]:
        s = self.snap.day(day)
        if s is None:
            raise KeyError(f"no summary of day {day}")
        return s

    def _scatter(self, days: list[int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        n = self.snap.num_users if days else 0
        active = np.zeros(n, dtype=bool)
        slots = {c.name: np.zeros(n, dtype=c.dtype) for c in VISIT_COLUMNS}
        for d in days:  # ascending: a later day overwrites an earlier one
            s = self._day(d)
            uid = np.asarray(s["uid"])
            active[uid] = True
            for name, slot in slots.items():
                v = np.asarray(s[name])
                known = v != 0
                if known.all():
                    slot[uid] = v
                else:
                    slot[uid[known]] = v[known]
        users = np.flatnonzero(active).astype(np.uint32)
        return users, {name: slot[users] for name, slot in slots.items()}

    def person_values(self, column: str, users: np.ndarray, end_day: int) -> np.ndarray:
        values = person_values(self.snap.person_log(column, full=False), users, end_day)
        return values.astype(COLUMN[column].dtype, copy=False)

    def value_names(self, column: str) -> list[str | None]:
        if column != DEV.name:  # the only column the store numbers by the data
            raise KeyError(f"column {column} has fixed names")
        return self.snap.device_names
