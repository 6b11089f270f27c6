"""The recent-window view: every portrait column of the users active in the last
``VIEW_DAYS`` days, as of the last day with visits, so a window ending on that day reads
a prefix of arrays instead of scattering its days.

Users are sorted by their last active day, latest first; for each visit column the view keeps
the latest known code within the last ``VIEW_DAYS`` days and the day it is from. A window
``[b, e]`` (``e`` the view's day, ``b >= e - VIEW_DAYS + 1``) is then exact with:

* active users: the prefix whose last active day is ``>= b``;
* a visit column: its code where its day is ``>= b``, else unknown;
* new: first visit day ``>= b``; person columns: as of ``e`` (the view's day), kept as they are.

It is built when a bulk ingest ends (compaction) and used only while no commit has touched a
day up to ``e`` since (the manifest's change log); otherwise queries scatter the days.
"""

from __future__ import annotations

import bisect

import numpy as np

from weanalysis.dims import COLUMNS, PERSON_COLUMNS, VISIT_COLUMNS

VIEW_DAYS = 31
# the view's arrays, one value per user each
VIEW_ARRAYS = (
    "uid",
    "last",
    *(n for c in VISIT_COLUMNS for n in (c.name, c.name + "_day")),
    "first_day",
    *(c.name for c in PERSON_COLUMNS),
)


def counts_shape_ok(length: int) -> bool:
    """Whether :func:`day_counts`' array can have this length (totals, then active and new
    counts per column, the column numbered by the data at least 1 long)."""
    fixed = sum(c.size for c in COLUMNS if c.size is not None)
    rest = length - 2 - 2 * fixed
    return rest >= 2 and rest % 2 == 0


def build(snap, num_users: int) -> dict:
    """The view's arrays for ``snap`` (an AppSnapshot whose day runs are compacted)."""
    from weanalysis.store.summaries import person_values, unpack

    days = snap.day_numbers()
    e = days[-1]
    recent = [d for d in days if d >= e - VIEW_DAYS + 1]
    last = np.full(num_users, -1, dtype=np.int32)
    code = {c.name: np.zeros(num_users, dtype=c.dtype) for c in VISIT_COLUMNS}
    when = {c.name: np.full(num_users, -1, dtype=np.int32) for c in VISIT_COLUMNS}
    for d in recent:  # ascending: a later day overwrites
        uid, packed, _ = snap.day_packed(d)
        uid, packed = np.asarray(uid), np.asarray(packed)
        last[uid] = d
        for c in VISIT_COLUMNS:
            v = unpack(packed, c.name)
            known = v != 0
            code[c.name][uid[known]] = v[known]
            when[c.name][uid[known]] = d
    users = np.flatnonzero(last >= 0)
    perm = np.argsort(-last[users], kind="stable")
    order = users[perm]
    # days as int16 while they fit (until 2059): a query compares them with the window's
    # first day, whatever their width
    days_dtype = np.int16 if e < np.iinfo(np.int16).max else np.int32
    arrays = {"uid": order.astype(np.uint32), "last": last[order].astype(days_dtype)}
    for c in VISIT_COLUMNS:
        arrays[c.name] = code[c.name][order]
        arrays[c.name + "_day"] = when[c.name][order].astype(days_dtype)
    first = np.asarray(snap.first_day)
    arrays["first_day"] = first[order].astype(np.int32)
    for c in PERSON_COLUMNS:
        values = person_values(snap.person_runs(c.name), users.astype(np.uint32), e)
        arrays[c.name] = values[perm].astype(c.dtype)
    return {"day": e, "arrays": arrays}


def active_prefix(arrays: dict[str, np.ndarray], begin: int) -> int:
    """How many of the view's users were active on a day ``>= begin``."""
    last = arrays["last"]  # descending: a binary search on the negated days
    return bisect.bisect_right(last, -begin, key=lambda d: -int(d))


def day_counts(snap, day: int) -> np.ndarray:
    """The 1-day answer of ``day`` as counts (int64): active and new totals, then for each
    column of :data:`weanalysis.dims.COLUMNS` the users per code, active then new."""
    from weanalysis.store.summaries import person_values, unpack

    uid, packed, _ = snap.day_packed(day)
    uid, packed = np.asarray(uid), np.asarray(packed)
    is_new = np.asarray(snap.first_day)[uid] >= day
    values = {c.name: unpack(packed, c.name) for c in VISIT_COLUMNS}
    for c in PERSON_COLUMNS:
        values[c.name] = person_values(snap.person_runs(c.name), uid, day)
    parts = [np.array([len(uid), int(np.count_nonzero(is_new))], dtype=np.int64)]
    for c in COLUMNS:
        size = c.size if c.size is not None else len(snap.device_names)
        v = values[c.name].astype(np.intp)
        parts.append(np.bincount(v, minlength=size).astype(np.int64))
        parts.append(np.bincount(v[is_new], minlength=size).astype(np.int64))
    return np.concatenate(parts)


def split_counts(arr: np.ndarray, num_devices: int) -> tuple[int, int, dict, dict]:
    """:func:`day_counts`' array -> (active total, new total, {column: active}, {column: new});
    a column numbered by the data is padded to today's number of names."""
    arr = np.asarray(arr)
    fixed = sum(c.size for c in COLUMNS if c.size is not None)
    grown = (len(arr) - 2) // 2 - fixed  # the one column numbered by the data
    active: dict[str, np.ndarray] = {}
    new: dict[str, np.ndarray] = {}
    at = 2
    for c in COLUMNS:
        size = c.size if c.size is not None else grown
        want = c.size if c.size is not None else max(num_devices, grown)
        for out in (active, new):
            out[c.name] = np.pad(arr[at : at + size], (0, want - size))
            at += size
    return int(arr[0]), int(arr[1]), active, new
