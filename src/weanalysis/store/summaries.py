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

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from weanalysis.dims import VALUE_BITS, VISIT_COLUMNS
from weanalysis.errors import StoreDamagedError
from weanalysis.store.days import MS_PER_DAY

VISIT_ATTRS = tuple(c.name for c in VISIT_COLUMNS)
ATTR_DTYPES = {c.name: c.dtype for c in VISIT_COLUMNS}
VALUE_MASK = (1 << VALUE_BITS) - 1

# A day summary stores its visit columns packed in one integer per user (the query scatters one
# array per day, not one per column): each column's code in its own bit field, and a marker bit
# so that a user with nothing known is still told from no user. The columns with a fixed number
# of codes come first, as narrow as their codes allow, then the marker, then the column
# numbered by the data (devices) in the bits above: with fewer than 2^16 device names a row
# fits 31 bits, and a day run is stored as int32 (see :func:`stored_packed`), else int64.
FIELDS: dict[str, tuple[int, int]] = {}  # column -> (shift, mask)
_shift = 0
for _c in VISIT_COLUMNS:
    if _c.size is not None:
        _bits = max(1, int(_c.size - 1).bit_length())
        FIELDS[_c.name] = (_shift, (1 << _bits) - 1)
        _shift += _bits
ACTIVE_BIT = np.int64(1 << _shift)
_shift += 1
for _c in VISIT_COLUMNS:
    if _c.size is None:
        _bits = np.dtype(_c.dtype).itemsize * 8
        FIELDS[_c.name] = (_shift, (1 << _bits) - 1)
        _shift += _bits
assert _shift <= 63, "the visit columns no longer fit one int64: a new storage format"
del _shift, _c, _bits


def pack(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Visit columns (codes >= 0) -> one int64 per row, with the marker bit."""
    n = len(next(iter(cols.values())))
    out = np.full(n, ACTIVE_BIT, dtype=np.int64)
    for name, (shift, _) in FIELDS.items():
        out |= np.asarray(cols[name]).astype(np.int64) << shift
    return out


def stored_packed(packed: np.ndarray) -> np.ndarray:
    """Packed rows as a day run stores them: int32 when every row fits (a reader widens them
    where it mixes days), else int64."""
    if len(packed) == 0 or int(packed.max()) <= np.iinfo(np.int32).max:
        return packed.astype(np.int32)
    return packed


def partial_rows(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Positions (int32) of the rows where some visit column is unknown (0)."""
    some = np.zeros(len(cols["uid"]), dtype=bool)
    for name in FIELDS:
        some |= np.asarray(cols[name]) == 0
    return np.flatnonzero(some).astype(np.int32)


def unpack(packed: np.ndarray, name: str) -> np.ndarray:
    """One visit column of packed rows (int32 or int64), in the column's dtype."""
    shift, mask = FIELDS[name]
    return ((np.asarray(packed, dtype=np.int64) >> shift) & mask).astype(ATTR_DTYPES[name])


def times_table(run: dict[str, np.ndarray]) -> pa.Table:
    """A day run's times (int32 ms from the day's start, one per visit column) as a table that
    compresses: the first column's time, and each other column's difference from it (almost
    always 0: one visit usually knows every column). Only merges read it, never a query."""
    t0 = np.asarray(run[VISIT_ATTRS[0] + "_t"]).astype(np.int64)
    cols = {"t0": t0.astype(np.int32)}
    for i, a in enumerate(VISIT_ATTRS[1:], 1):
        cols[f"dt{i}"] = (np.asarray(run[a + "_t"]).astype(np.int64) - t0).astype(np.int32)
    return pa.table(cols)


def read_times(path: Path, rows: int) -> np.ndarray:
    """The (rows, columns) int32 times of a day run (see :func:`times_table`); a file that is
    not that is a StoreDamagedError."""
    try:
        t = pq.read_table(path)
        t0 = t.column("t0").to_numpy().astype(np.int64)
        out = np.empty((len(t0), len(VISIT_ATTRS)), dtype=np.int32)
        out[:, 0] = t0
        for i in range(1, len(VISIT_ATTRS)):
            out[:, i] = t0 + t.column(f"dt{i}").to_numpy()
    except FileNotFoundError:
        raise StoreDamagedError(path, "the file is missing") from None
    except (pa.ArrowException, OSError, KeyError, ValueError) as e:
        raise StoreDamagedError(path, f"not the times of a day ({e})") from None
    if len(out) != rows:
        raise StoreDamagedError(path, "not one time per user and column")
    return out


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
    attribute, ``a`` and ``a_t`` (of ``time_ms``' dtype: the store keeps int32 offsets from the
    day's start), all aligned on the sorted unique uids.
    """
    if old is not None and len(old["uid"]):
        # the new rows are summarised on their own (small), then merged into the stored
        # summary with binary searches and one insertion pass: no sort of the whole day
        return merge_summaries(old, merge_day(None, uid, time_ms, values))
    users = np.unique(uid)
    out: dict[str, np.ndarray] = {"uid": users.astype(np.uint32)}
    for a in VISIT_ATTRS:
        known = values[a] != 0
        u, t, v = uid[known], time_ms[known], values[a][known]
        order = np.lexsort((t, u))  # stable: equal (uid, time) keep storage order
        last = order[_last_per_group(u[order])]
        col = np.zeros(len(users), dtype=ATTR_DTYPES[a])
        col_t = np.zeros(len(users), dtype=time_ms.dtype)
        pos = np.searchsorted(users, u[last])
        col[pos] = v[last]
        col_t[pos] = t[last]
        out[a] = col
        out[a + "_t"] = col_t
    return out


def merge_summaries(
    old: dict[str, np.ndarray], new: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """A day's summary updated with the summary of later-stored rows (which win ties)."""
    ou, nu = np.asarray(old["uid"]), np.asarray(new["uid"])
    if len(ou) == 0:
        return {k: np.array(v) for k, v in new.items()}
    pos = np.searchsorted(ou, nu)
    exists = np.zeros(len(nu), dtype=bool)
    inside = pos < len(ou)
    exists[inside] = ou[pos[inside]] == nu[inside]
    out = {k: np.array(old[k]) for k in new}  # copies: the stored files are read-only maps
    at = pos[exists]
    for a in VISIT_ATTRS:
        nv, nt = np.asarray(new[a])[exists], np.asarray(new[a + "_t"])[exists]
        take = (nv != 0) & ((out[a][at] == 0) | (nt >= out[a + "_t"][at]))
        out[a][at[take]] = nv[take]
        out[a + "_t"][at[take]] = nt[take]
    add = ~exists
    if add.any():
        out = {k: np.insert(out[k], pos[add], np.asarray(new[k])[add]) for k in out}
    return out


LOG_COLUMNS = ("key", "t", "val")
# A base run is stored by user (CSR): each user's entries are ``slot[off[u]:off[u + 1]]``
# (sorted), with ``t`` and ``val`` beside them and ``cur`` (the last entry packed, one per
# user): 2 bytes of slot a entry and 4 of offset a user instead of an 8-byte key.
BASE_COLUMNS = ("off", "slot", "t", "val", "cur")
# ``t``: the entry's time as int32 ms from the start of its slot's day (exact: a local day
# spans < 2^31 ms from the UTC midnight of its number); an undated entry's: T_ABSENT. Only
# entries of the same key (so the same day) are ever compared by time.
T_ABSENT = np.iinfo(np.int32).min
_TIME_ABSENT64 = np.iinfo(np.int64).min


def log_times(slot: np.ndarray, time_ms: np.ndarray) -> np.ndarray:
    """Entry times as a log stores them (see :data:`T_ABSENT`)."""
    t = np.asarray(time_ms, dtype=np.int64)
    rel = t - (np.asarray(slot, dtype=np.int64) - 2) * MS_PER_DAY
    return np.where(t == _TIME_ABSENT64, T_ABSENT, rel).astype(np.int32)


def new_entries(
    uid: np.ndarray, slot: np.ndarray, time_ms: np.ndarray, value: np.ndarray
) -> dict[str, np.ndarray]:
    """Known values (in storage order) as a log run: one entry per key, the latest by time
    (a tie goes to the row stored later), sorted by key."""
    key = (uid.astype(np.int64) << SLOT_BITS) | slot.astype(np.int64)
    t = log_times(slot, time_ms)
    order = np.lexsort((t, key))  # stable: storage order breaks time ties
    last = order[_last_per_group(key[order])]
    return {"key": key[last], "t": t[last], "val": value[last].astype(np.int8)}


def merge_logs(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two log runs as one; the ``new`` run was stored later, so it wins a time tie. Binary
    searches and one insertion pass: no sort of the old run."""
    ok, ot, ov = np.asarray(old["key"]), np.array(old["t"]), np.array(old["val"])
    nk, nt, nv = np.asarray(new["key"]), np.asarray(new["t"]), np.asarray(new["val"])
    if len(ok) == 0:
        return {"key": np.array(nk), "t": np.array(nt), "val": np.array(nv)}
    pos = np.searchsorted(ok, nk)
    inside = pos < len(ok)
    exists = np.zeros(len(nk), dtype=bool)
    exists[inside] = ok[pos[inside]] == nk[inside]
    win = np.zeros(len(nk), dtype=bool)
    win[exists] = nt[exists] >= ot[pos[exists]]
    ot[pos[win]] = nt[win]
    ov[pos[win]] = nv[win]
    add = ~exists
    return {
        "key": np.insert(ok, pos[add], nk[add]),
        "t": np.insert(ot, pos[add], nt[add]),
        "val": np.insert(ov, pos[add], nv[add]),
    }


def base_run(log: dict[str, np.ndarray], num_users: int) -> dict[str, np.ndarray]:
    """A log run (sorted by key) as a base run stores it (see :data:`BASE_COLUMNS`): per-user
    offsets, slots, times and values, and each user's last entry packed as
    ``slot << VALUE_BITS | value`` (0: none), which answers a window ending on or after it
    without a search."""
    keys, vals = np.asarray(log["key"]), np.asarray(log["val"])
    users = keys >> SLOT_BITS
    slots = keys & ((1 << SLOT_BITS) - 1)
    n = max(num_users, int(users[-1]) + 1 if len(users) else 0)
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n), out=off[1:])
    cur = np.zeros(n, dtype=np.int32)
    if len(keys):
        ends = _last_per_group(users)
        cur[users[ends]] = _packed(keys[ends], vals[ends])
    return {
        "off": off.astype(np.int32) if len(keys) < 2**31 else off,
        "slot": slots.astype(np.uint16 if len(slots) == 0 or slots.max() < 2**16 else np.uint32),
        "t": np.asarray(log["t"], dtype=np.int32),
        "val": vals.astype(np.int8),
        "cur": cur,
    }


def log_of_base(base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A base run as a log run (keys, times, values), for merges."""
    off = np.asarray(base["off"]).astype(np.int64)
    users = np.repeat(np.arange(len(off) - 1, dtype=np.int64), np.diff(off))
    key = (users << SLOT_BITS) | np.asarray(base["slot"]).astype(np.int64)
    return {"key": key, "t": np.array(base["t"]), "val": np.array(base["val"])}


def merge_person(
    old: dict[str, np.ndarray] | None,
    uid: np.ndarray,
    slot: np.ndarray,
    time_ms: np.ndarray,
    value: np.ndarray,
    num_users: int,
) -> dict[str, np.ndarray]:
    """Merge new known values (in storage order) into a whole person log (a log run); returns
    the new log as a base run."""
    log = new_entries(uid, slot, time_ms, value)
    if old is not None and len(old["key"]):
        log = merge_logs(old, log)
    return base_run(log, num_users)


def _packed(keys: np.ndarray, vals: np.ndarray) -> np.ndarray:
    return (((keys & ((1 << SLOT_BITS) - 1)) << VALUE_BITS) | vals.astype(np.int64)).astype(
        np.int32
    )


def _base_values(log: dict[str, np.ndarray], users: np.ndarray, end_day: int) -> np.ndarray:
    n = len(log["cur"])
    all_inside = len(users) == 0 or int(users.max()) < n
    u = users if all_inside else users[users < n]
    c = np.asarray(log["cur"])[u]
    # packed ``slot << VALUE_BITS | value``: an entry on a slot <= e is a number < limit, and
    # no entry is 0, whose value bits are 0 too: one comparison instead of unpacking the slot
    limit = (day_slot(end_day) + 1) << VALUE_BITS
    vals = (c & VALUE_MASK).astype(np.int8)
    later = np.flatnonzero(c >= limit)
    if len(later):
        # the entry before the last (by the offsets), else a binary search in the user's
        # entries (two or more after the window)
        e_slot = day_slot(end_day)
        lu = u[later].astype(np.int64)
        off = log["off"]
        before = np.asarray(off[lu + 1]).astype(np.int64) - 2
        has = before >= np.asarray(off[lu])
        at = np.where(has, before, 0)
        ps = np.where(has, np.asarray(log["slot"])[at], 0)
        vals[later] = np.where(has & (ps <= e_slot), np.asarray(log["val"])[at], 0)
        deeper = later[has & (ps > e_slot)]
        if len(deeper):
            vals[deeper] = _entry_at(log, u[deeper], e_slot)[2]
    if all_inside:
        return vals
    out = np.zeros(len(users), dtype=np.int8)
    out[users < n] = vals
    return out


def _entry_at(
    log: dict[str, np.ndarray], users: np.ndarray, e_slot: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per user, the position of its last entry with ``slot <= e_slot`` in a log run (keys)
    or a base run (offsets): (found, position, value, slot) — value and slot 0 where there is
    none."""
    if "off" in log:
        return _entry_at_base(log, users, e_slot)
    keys = log["key"]
    lu = users.astype(np.int64)
    if len(keys) == 0:
        z = np.zeros(len(users), dtype=np.int64)
        return np.zeros(len(users), dtype=bool), z, z.astype(np.int8), z
    pos = np.searchsorted(keys, (lu << SLOT_BITS) | e_slot, side="right") - 1
    ok = pos >= 0
    pos_ok = np.where(ok, pos, 0)
    found_keys = np.asarray(keys[pos_ok])
    ok &= (found_keys >> SLOT_BITS) == lu
    vals = np.where(ok, log["val"][pos_ok], 0).astype(np.int8)
    slots = np.where(ok, found_keys & ((1 << SLOT_BITS) - 1), 0)
    return ok, pos_ok, vals, slots


def _entry_at_base(
    log: dict[str, np.ndarray], users: np.ndarray, e_slot: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_entry_at` over a base run: a binary search in each user's sorted slots, all
    users at once (one step per halving, at most ~17)."""
    off, slot = log["off"], log["slot"]
    u = users.astype(np.int64)
    inside = u < len(off) - 1
    uu = np.where(inside, u, 0)
    start = np.where(inside, np.asarray(off[uu]), 0).astype(np.int64)
    lo = start.copy()
    hi = np.where(inside, np.asarray(off[uu + 1]), 0).astype(np.int64)
    active = np.flatnonzero(lo < hi)
    while len(active):  # the first position whose slot is > e_slot
        mid = (lo[active] + hi[active]) >> 1
        go = np.asarray(slot[mid]) <= e_slot
        lo[active[go]] = mid[go] + 1
        hi[active[~go]] = mid[~go]
        active = active[lo[active] < hi[active]]
    pos = lo - 1
    ok = pos >= start
    pos_ok = np.where(ok, pos, 0)
    if len(slot) == 0:
        z = np.zeros(len(users), dtype=np.int64)
        return ok, z, z.astype(np.int8), z
    vals = np.where(ok, np.asarray(log["val"])[pos_ok], 0).astype(np.int8)
    slots = np.where(ok, np.asarray(slot)[pos_ok].astype(np.int64), 0)
    return ok, pos_ok, vals, slots


def person_values(
    runs: list[dict[str, np.ndarray]] | dict[str, np.ndarray] | None,
    users: np.ndarray,
    end_day: int,
) -> np.ndarray:
    """The latest known value (0 unknown) of each user in ``users`` as of the end of ``end_day``.

    ``runs``: the log's runs, oldest first; the first is a base run (see :func:`base_run`); the
    later ones (small: recent commits not yet merged) override it user by user — a later slot
    wins, and on the same slot the later time (a tie: the later run).
    """
    if isinstance(runs, dict):
        runs = [runs]
    if not runs or len(users) == 0:
        return np.zeros(len(users), dtype=np.int8)
    out = _base_values(runs[0], users, end_day)
    if len(runs) == 1:
        return out
    delta = runs[1]
    for r in runs[2:]:
        delta = merge_logs(delta, r)
    e_slot = day_slot(end_day)
    touched = np.unique(np.asarray(delta["key"]) >> SLOT_BITS)
    where = np.searchsorted(users, touched)  # users are sorted
    where = np.minimum(where, len(users) - 1)
    present = users[where] == touched
    idx, tu = where[present], touched[present]
    if len(tu) == 0:
        return out
    d_ok, d_pos, d_val, d_slot = _entry_at(delta, tu, e_slot)
    b_ok, b_pos, _, b_slot = _entry_at(runs[0], tu, e_slot)
    same = d_ok & b_ok & (d_slot == b_slot)
    d_t = np.asarray(delta["t"])[d_pos]
    base_t = np.asarray(runs[0]["t"])
    b_t = base_t[b_pos] if len(base_t) else np.zeros(len(tu), np.int32)
    take = d_ok & (~b_ok | (d_slot > b_slot) | (same & (d_t >= b_t)))
    out[idx[take]] = d_val[take]
    return out
