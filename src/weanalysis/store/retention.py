"""Retention (``weanalysis app set A --retention-days N``): records of days before ``today - N``
(today in the app's time zone) are deleted, at the next commit and by ``weanalysis gc``.

A portrait of a window inside the retained range still reads two things of deleted records
(SPEC.md 3): whether a user's first visit ever lies before the window ("new users"), and the
user's gender and age as of the window's end, which may come from a record before the range. So
each pass keeps, per user, in the app's **retained state** (a folder named by the manifest,
``retained: {"from_day", "dir"}``):

- the first visit day, when it lies before the retained range;
- for gender and for age, the last known entry before the retained range (its day, time and
  value): for every window ending inside the range it is the only one of the deleted entries
  that can be the latest.

Every re-derivation (:meth:`weanalysis.store.writer.Writer.rebuild`: ``weanalysis rebuild``,
``forget``, a retention pass) starts from the retained state, then the raw records, so every
window inside the retained range gives exactly the answer it gave before; DuckDB over the raw
records reads it too (:mod:`weanalysis.portrait.duck`). A window that begins before the range is
refused (:class:`WindowBeforeRetention`): never a silently smaller answer.

Profiles without a time belong to no day and are kept. A pass is one rebuild under the write
lock, published by one manifest: a ``kill -9`` leaves the state before or after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weanalysis.errors import InputError, StoreDamagedError
from weanalysis.store import files
from weanalysis.store.days import day_date, today
from weanalysis.store.integrity import verified
from weanalysis.store.rows import RAW_COMMON, REBUILD_ROWS, Derived, rows_of_raw
from weanalysis.store.snapshot import read_manifest

PROPS = ("gender", "age")  # person columns, named as the person logs are
ARRAYS = (
    "first_uid",
    "first_day",
    *(f"{p}_{c}" for p in PROPS for c in ("uid", "day", "t", "val")),
)
DTYPES = {"uid": np.uint32, "day": np.int32, "t": np.int64, "val": np.int8}


class WindowBeforeRetention(InputError):
    """A window that begins before the app's retained range: its records were deleted."""

    def __init__(self, begin: int, from_day: int):
        self.begin = begin
        self.from_day = from_day
        super().__init__(
            f"the window begins on {day_date(begin).isoformat()}, before the retained range: "
            f"records of days before {day_date(from_day).isoformat()} were deleted by the "
            "app's retention (weanalysis app set --retention-days); choose a later window"
        )


@dataclass
class Trimmed:
    """What one retention pass did."""

    from_day: int  # the first retained day
    visits: int = 0  # records deleted
    profiles: int = 0
    users: int = 0  # users whose first visit day is kept in the retained state

    def as_dict(self) -> dict:
        return {
            "from": day_date(self.from_day).isoformat(),
            "visits": self.visits,
            "profiles": self.profiles,
            "users_retained": self.users,
        }


def retained_from(manifest: dict) -> int | None:
    """The first day of the retained range (None: nothing was ever deleted by retention)."""
    r = manifest.get("retained")
    return None if not r else int(r["from_day"])


def check_window(manifest: dict, begin: int) -> None:
    """Raise :class:`WindowBeforeRetention` when a window beginning on ``begin`` reaches before
    the retained range."""
    start = retained_from(manifest)
    if start is not None and begin < start:
        raise WindowBeforeRetention(begin, start)


def zone_of(manifest: dict, timezone: str) -> ZoneInfo:
    """The zone the stored days are in (the manifest's once a change of zone was committed)."""
    return ZoneInfo(manifest.get("timezone") or timezone)


def cutoff_of(days: int, tz: ZoneInfo, today_day: int | None = None) -> int:
    """The first day kept by a retention of ``days`` days: today and the ``days`` days before
    it are kept, so the 30-day window that ends yesterday stays whole with 30 days."""
    return (today(tz) if today_day is None else today_day) - days


def due(
    manifest: dict,
    days: int | None,
    tz: ZoneInfo,
    today_day: int | None = None,
    oldest: int | None = None,
) -> int | None:
    """The first day to keep when a retention pass has work to do, else None: once the range
    moved on (a new day, a shorter retention), or when a commit stored records of days before
    it (``oldest``: the earliest day of that commit)."""
    if days is None or manifest["version"] == 0:
        return None
    start = retained_from(manifest)
    cutoff = max(cutoff_of(days, tz, today_day), start if start is not None else -(2**31))
    if start is None or start < cutoff or (oldest is not None and oldest < cutoff):
        return cutoff
    return None


# -- the retained state --------------------------------------------------------------------------


def load(app_dir: Path, manifest: dict, entry: dict | None = None) -> dict[str, np.ndarray] | None:
    """The retained state's arrays (verified against ``manifest``'s checksums), or None."""
    entry = entry if entry is not None else manifest.get("retained")
    if not entry:
        return None
    folder = verified(app_dir, manifest, entry["dir"])
    out = {n: files.load_npy(folder / f"{n}.npy", mmap=False) for n in ARRAYS}
    n = len(out["first_uid"])
    if len(out["first_day"]) != n:
        raise StoreDamagedError(folder / "first_day.npy", "not one day per user")
    for p in PROPS:
        if len({len(out[f"{p}_{c}"]) for c in DTYPES}) != 1:
            raise StoreDamagedError(folder / f"{p}_uid.npy", "columns of unequal length")
    return out


def write(app_dir: Path, tag: str, arrays: dict[str, np.ndarray], from_day: int) -> dict:
    """A new retained state's folder (fsynced); returns the manifest's ``retained`` entry."""
    sub = f"meta/retained-{tag}"
    folder = app_dir / sub
    folder.mkdir(parents=True, exist_ok=True)
    for name in ARRAYS:
        files.write_npy(folder / f"{name}.npy", np.ascontiguousarray(arrays[name]))
    files.fsync_dir(folder)
    return {"from_day": int(from_day), "dir": sub}


def state_at(app_dir: Path, manifest: dict, cutoff: int) -> dict[str, np.ndarray]:
    """What the portraits of windows from ``cutoff`` on read of the records of days before it:
    from the previous retained state and the raw records (read as a rebuild reads them, so this
    depends on neither the day summaries' nor the person logs' layout)."""
    kept = load(app_dir, manifest) or empty()
    first_u, first_d = [kept["first_uid"]], [kept["first_day"]]
    # per person column: (uid, day, time, value), the previous state's entries first (they
    # were stored before every raw record), then the raw records in storage order
    entries = {p: [tuple(kept[f"{p}_{c}"] for c in DTYPES)] for p in PROPS}
    for rel in manifest["raw"]:
        path = verified(app_dir, manifest, rel)
        visit = Path(rel).name.startswith("visits-")
        for rb in pq.ParquetFile(path).iter_batches(REBUILD_ROWS, columns=list(RAW_COMMON)):
            rows = rows_of_raw(rb, False, _no_devices)
            old = rows.dated & (rows.day < cutoff)
            if visit:
                first_u.append(rows.uid[old])
                first_d.append(rows.day[old])
            for p, values in (("gender", rows.gender), ("age", rows.age_bucket)):
                sel = old & (values > 0)
                entries[p].append((rows.uid[sel], rows.day[sel], rows.time_ms[sel], values[sel]))
    u, d = np.concatenate(first_u).astype(np.int64), np.concatenate(first_d).astype(np.int32)
    order = np.lexsort((d, u))  # each user's earliest day first
    lead = np.ones(len(order), dtype=bool)
    lead[1:] = u[order][1:] != u[order][:-1]
    pick = order[lead]
    out = {"first_uid": u[pick].astype(np.uint32), "first_day": d[pick]}
    for p in PROPS:
        uid, day, t, val = (np.concatenate(col) for col in zip(*entries[p], strict=True))
        uid = uid.astype(np.int64)
        # the latest by (day, time), a tie to the one stored later: as the person logs order
        order = np.lexsort((np.arange(len(uid)), t, day, uid))
        last = np.ones(len(order), dtype=bool)
        last[:-1] = uid[order][1:] != uid[order][:-1]
        pick = order[last]
        out[f"{p}_uid"] = uid[pick].astype(np.uint32)
        out[f"{p}_day"] = day[pick].astype(np.int32)
        out[f"{p}_t"] = t[pick].astype(np.int64)
        out[f"{p}_val"] = val[pick].astype(np.int8)
    return out


def empty() -> dict[str, np.ndarray]:
    """A retained state that keeps nothing."""
    out = {"first_uid": np.zeros(0, np.uint32), "first_day": np.zeros(0, np.int32)}
    for p in PROPS:
        out.update({f"{p}_{c}": np.zeros(0, dt) for c, dt in DTYPES.items()})
    return out


def _no_devices(names):  # rows_of_raw of the common columns only: never called
    raise AssertionError("device codes of a retained-state read")


def without_users(arrays: dict[str, np.ndarray], dead: np.ndarray) -> dict[str, np.ndarray]:
    """The retained state without these users (an erasure)."""
    out = {}
    keep = ~np.isin(arrays["first_uid"].astype(np.int64), dead)
    out["first_uid"], out["first_day"] = arrays["first_uid"][keep], arrays["first_day"][keep]
    for p in PROPS:
        keep = ~np.isin(arrays[f"{p}_uid"].astype(np.int64), dead)
        for c in DTYPES:
            out[f"{p}_{c}"] = arrays[f"{p}_{c}"][keep]
    return out


def rows_of(arrays: dict[str, np.ndarray]) -> list[tuple[str, Derived]]:
    """The retained state as rows for the writer's derivations, oldest first: ("first", rows)
    for first days, then ("persons", rows) per person column."""
    out = []
    n = len(arrays["first_uid"])
    if n:
        zero = np.zeros(n, np.int8)
        day = arrays["first_day"].astype(np.int32)
        t = day.astype(np.int64)  # not read by the first-day runs
        uid = arrays["first_uid"].astype(np.uint32)
        out.append(("first", Derived(uid, t, day, zero, zero, True)))
    for p in PROPS:
        n = len(arrays[f"{p}_uid"])
        if not n:
            continue
        val, zero = arrays[f"{p}_val"].astype(np.int8), np.zeros(n, np.int8)
        rows = Derived(
            uid=arrays[f"{p}_uid"].astype(np.uint32),
            time_ms=arrays[f"{p}_t"].astype(np.int64),
            day=arrays[f"{p}_day"].astype(np.int32),
            gender=val if p == "gender" else zero,
            age_bucket=val if p == "age" else zero,
            visit=False,
        )
        out.append(("persons", rows))
    return out


# -- a retention pass ----------------------------------------------------------------------------


def rewrites(cutoff: int, out: Trimmed) -> dict[str, Callable]:
    """The callbacks of :meth:`Writer.rebuild` for a pass that keeps days from ``cutoff`` on
    (never fewer than are kept already); fills ``out``."""

    def rewrite_retained(app_dir: Path, manifest: dict, tag: str) -> dict:
        start = retained_from(manifest)
        out.from_day = max(cutoff, start) if start is not None else cutoff
        arrays = state_at(app_dir, manifest, out.from_day)
        out.users = len(arrays["first_uid"])
        return write(app_dir, tag, arrays, out.from_day)

    def rewrite_raw(app_dir: Path, manifest: dict, tag: str) -> list[str]:
        raw = []
        for i, rel in enumerate(manifest["raw"]):
            path = verified(app_dir, manifest, rel)
            day = pq.read_table(path, columns=["day"]).column("day")
            # undated rows (profiles without a time) belong to no day: kept
            old = pc.fill_null(pc.less(day, out.from_day), False).to_numpy(zero_copy_only=False)
            if not old.any():
                raw.append(rel)
                continue
            if Path(rel).name.startswith("visits-"):
                out.visits += int(old.sum())
            else:
                out.profiles += int(old.sum())
            if old.all():
                continue
            keep = pq.read_table(path).filter(pa.array(~old))
            stem = Path(rel).name.split("-")[0]
            new_rel = f"raw/{stem}-{tag}-t{i}.parquet"
            files.write_parquet(app_dir / new_rel, keep)
            raw.append(new_rel)
        return raw

    return {"rewrite_retained": rewrite_retained, "rewrite_raw": rewrite_raw}


def retain(
    data_dir: Path, app, cutoff: int, progress: Callable[[int, int], None] | None = None
) -> Trimmed:
    """Delete ``app``'s records of days before ``cutoff`` (one rebuild, one commit)."""
    from weanalysis.store.writer import Writer  # the writer calls back into this module

    out = Trimmed(cutoff)
    writer = Writer(data_dir)
    try:
        writer.rebuild(app, progress=progress, **rewrites(cutoff, out))
    finally:
        writer.close()
    return out


def apply(
    data_dir: Path,
    app,
    days: int | None,
    today_day: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Trimmed | None:
    """A retention pass of ``days`` days when one is due (``weanalysis gc``); None otherwise."""
    d = data_dir / "apps" / app.appid
    if days is None or not (d / "manifest.json").exists():
        return None
    manifest = read_manifest(d)
    cutoff = due(manifest, days, zone_of(manifest, app.timezone), today_day)
    if cutoff is None:
        return None
    return retain(data_dir, app, cutoff, progress)
