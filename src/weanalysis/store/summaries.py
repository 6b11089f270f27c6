"""The two derived structures behind every portrait, kept exact under late and repeated data.

**Day summaries** (one per app and day): one row per user active that day, sorted by dense uid,
holding for each visit attribute (location, platform, device) the value of the user's latest
visit of that day *that has the attribute known*, with that visit's time. A window's answer is
then "the latest day in the window where the attribute is known", a scatter in day order.

**Person logs** (gender, age): one entry per (user, day) holding the latest known value of
that day (undated profiles sit on a slot before every day), sorted by ``key = uid << 17 | slot``.
The answer as of day ``e`` is the last entry with ``slot <= e``: usually the user's last entry
(``cur``), else the one before it (``prev``), else a binary search.

"Latest" is by time, and a tie goes to the record stored later: merges put the stored rows
before the new ones and use stable sorts, so storage order breaks ties.
"""

from __future__ import annotations

import numpy as np

from weanalysis.dims import VALUE_BITS, VISIT_COLUMNS

VISIT_ATTRS = tuple(c.name for c in VISIT_COLUMNS)
ATTR_DTYPES = {c.name: c.dtype for c in VISIT_COLUMNS}
VALUE_MASK = (1 << VALUE_BITS) - 1
SLOT_BITS = 17
UNDATED_SLOT = 1  # 0 means "no entry"; day d sits on slot d + 2


def day_slot(day: np.ndarray | int) -> np.ndarray | int:
    return day + 2


def _last_per_group(sorted_group: np.ndarray) -> np.ndarray:
    """Indices of the last row of each run of equal values in a sorted array."""
    n = len(sorted_group)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    last = np.ones(n, dtype=bool)
    last[:-1] = sorted_group[1:] != sorted_group[:-1]
    return np.flatnonzero(last)


def merge_day(
    old: dict[str, np.ndarray] | None,
    uid: np.ndarray,
    time_ms: np.ndarray,
    values: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Merge new visits of one day (in storage order) into the day's summary.

    ``values[a]`` is 0 where attribute ``a`` is unknown. Returns arrays ``uid`` and, for each
    attribute, ``a`` and ``a_t``, all aligned on the sorted unique uids.
    """
    if old is not None and len(old["uid"]):
        # the new rows are summarised on their own (small), then merged into the stored
        # summary with binary searches and one insertion pass: no sort of the whole day
        return _merge_summaries(old, merge_day(None, uid, time_ms, values))
    users = np.unique(uid)
    out: dict[str, np.ndarray] = {"uid": users.astype(np.uint32)}
    for a in VISIT_ATTRS:
        known = values[a] != 0
        u, t, v = uid[known], time_ms[known], values[a][known]
        order = np.lexsort((t, u))  # stable: equal (uid, time) keep storage order
        last = order[_last_per_group(u[order])]
        col = np.zeros(len(users), dtype=ATTR_DTYPES[a])
        col_t = np.zeros(len(users), dtype=np.int64)
        pos = np.searchsorted(users, u[last])
        col[pos] = v[last]
        col_t[pos] = t[last]
        out[a] = col
        out[a + "_t"] = col_t
    return out


def _merge_summaries(
    old: dict[str, np.ndarray], new: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """A day's stored summary updated with the summary of later-stored rows (which win ties)."""
    ou, nu = np.asarray(old["uid"]), new["uid"]
    pos = np.searchsorted(ou, nu)
    exists = np.zeros(len(nu), dtype=bool)
    inside = pos < len(ou)
    exists[inside] = ou[pos[inside]] == nu[inside]
    out = {k: np.array(old[k]) for k in new}  # copies: the stored files are read-only maps
    at = pos[exists]
    for a in VISIT_ATTRS:
        nv, nt = new[a][exists], new[a + "_t"][exists]
        take = (nv != 0) & ((out[a][at] == 0) | (nt >= out[a + "_t"][at]))
        out[a][at[take]] = nv[take]
        out[a + "_t"][at[take]] = nt[take]
    add = ~exists
    if add.any():
        out = {k: np.insert(out[k], pos[add], new[k][add]) for k in out}
    return out


def merge_person(
    old: dict[str, np.ndarray] | None,
    uid: np.ndarray,
    slot: np.ndarray,
    time_ms: np.ndarray,
    value: np.ndarray,
    num_users: int,
) -> dict[str, np.ndarray]:
    """Merge new known values (in storage order) into a person log; returns the new log.

    The stored log is sorted and has one entry per key, so the new entries (few, usually) are
    merged in with binary searches and one insertion pass, not a sort of the whole log.
    """
    key = (uid.astype(np.int64) << SLOT_BITS) | slot.astype(np.int64)
    order = np.lexsort((time_ms, key))  # stable: storage order breaks time ties
    last = order[_last_per_group(key[order])]
    nk, nt, nv = key[last], time_ms[last], value[last].astype(np.int8)
    if old is None or len(old["key"]) == 0:
        log = {"key": nk, "t": nt, "val": nv}
    else:
        ok, ot, ov = old["key"], np.array(old["t"]), np.array(old["val"])
        pos = np.searchsorted(ok, nk)
        inside = pos < len(ok)
        exists = np.zeros(len(nk), dtype=bool)
        exists[inside] = ok[pos[inside]] == nk[inside]
        # a new record wins a tie: it was stored later
        win = np.zeros(len(nk), dtype=bool)
        win[exists] = nt[exists] >= ot[pos[exists]]
        ot[pos[win]] = nt[win]
        ov[pos[win]] = nv[win]
        add = ~exists
        log = {
            "key": np.insert(ok, pos[add], nk[add]),
            "t": np.insert(ot, pos[add], nt[add]),
            "val": np.insert(ov, pos[add], nv[add]),
        }
    # per user, the last entry and the one before it, packed as slot << VALUE_BITS | value: a window
    # ending before a user's last change is answered by the entry before it, almost always
    cur = np.zeros(num_users, dtype=np.int32)
    prev = np.zeros(num_users, dtype=np.int32)
    if old is not None and len(old["cur"]):
        n_old = min(len(old["cur"]), num_users)
        cur[:n_old] = old["cur"][:n_old]
        prev[:n_old] = old["prev"][:n_old]
    # only users with new entries can have a new last (or second to last) entry
    users = np.unique(nk >> SLOT_BITS)
    keys = log["key"]
    ends = np.searchsorted(keys, (users + 1) << SLOT_BITS) - 1
    cur[users] = _packed(keys[ends], log["val"][ends])
    before = ends - 1
    has = (before >= 0) & ((keys[np.maximum(before, 0)] >> SLOT_BITS) == users)
    prev[users] = np.where(
        has, _packed(keys[np.maximum(before, 0)], log["val"][np.maximum(before, 0)]), 0
    )
    log["cur"] = cur
    log["prev"] = prev
    return log


def _packed(keys: np.ndarray, vals: np.ndarray) -> np.ndarray:
    return (((keys & ((1 << SLOT_BITS) - 1)) << VALUE_BITS) | vals.astype(np.int64)).astype(
        np.int32
    )


def person_values(log: dict[str, np.ndarray] | None, users: np.ndarray, end_day: int) -> np.ndarray:
    """The latest known value (0 unknown) of each user in ``users`` as of the end of ``end_day``."""
    out = np.zeros(len(users), dtype=np.int8)
    if log is None or len(users) == 0:
        return out
    n = len(log["cur"])
    inside = users < n
    u = users[inside]
    c = log["cur"][u]
    e_slot = day_slot(end_day)
    slot = c >> VALUE_BITS
    vals = np.where((slot > 0) & (slot <= e_slot), c & VALUE_MASK, 0).astype(np.int8)
    later = np.flatnonzero(slot > e_slot)
    if len(later):
        p = log["prev"][u[later]]
        ps = p >> VALUE_BITS
        vals[later] = np.where((ps > 0) & (ps <= e_slot), p & VALUE_MASK, 0)
        deeper = later[ps > e_slot]  # two or more changes after the window: search the log
        if len(deeper):
            lu = u[deeper].astype(np.int64)
            pos = np.searchsorted(log["key"], (lu << SLOT_BITS) | e_slot, side="right") - 1
            ok = pos >= 0
            pos_ok = np.where(ok, pos, 0)
            ok &= (log["key"][pos_ok] >> SLOT_BITS) == lu
            vals[deeper] = np.where(ok, log["val"][pos_ok], 0)
    out[inside] = vals
    return out
