"""Erasure, retention and a change of time zone: new states of an app's records.

Each runs under the store's write lock and ends in one published manifest (the commit point,
as for ingest): a crash or ``kill -9`` at any point leaves the previous state or the new one.
Raw segments are the source of truth: erasure and retention rewrite only the segments that hold
the rows to delete, then bring everything a portrait reads in line through one function,
:func:`weanalysis.store.rederive.rederive` (for an erasure it drops the users' entries, which
equals a re-derivation from the raw segments without reading them).

- **Erasure** (``forget``): the users' rows leave the raw segments, their openids leave the user
  segments (replaced by a tombstone, so dense ids stay stable and are never reused), the keys of
  their event ids leave the key segments (re-sent records are stored again as new); keys of
  their records without an event id mix the dead user id with the content, so no future record
  can match them. Raw and user segments that held their data are deleted at once (only the
  writer reads them); replaced summaries, which hold user numbers but no openid, follow after
  the usual grace period for readers.
- **Retention**: rows of days before ``today - N`` are deleted. What a portrait of a later window
  needs of them is kept per user in ``manifest["retained"]``: the first visit day ("new users"
  stay exact) and the latest gender and age as of the first retained day (what section 3 of
  SPEC.md reads of records before a window). A window that begins before the retained range is
  refused (:class:`WindowBeforeRetention`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from weanalysis.store import dedup, files
from weanalysis.store.catalog import App, Catalog, CatalogError, check_timezone
from weanalysis.store.days import local_days, today
from weanalysis.store.rederive import RETAINED_PROPS, is_visit_segment, rederive, retained_arrays
from weanalysis.store.snapshot import (
    NO_FIRST_DAY,
    AppSnapshot,
    read_manifest,
    retained_from,
    write_manifest,
)
from weanalysis.store.summaries import SLOT_BITS, UNDATED_SLOT, day_slot
from weanalysis.store.writer import MAX_CHANGES, UNDATED_DAY, WriterLock, _remove

TOMBSTONE = "\x00erased:"  # openids never hold control characters: no real one looks like this
SUBFOLDERS = ("raw", "users", "days", "persons", "keys", "meta")


@dataclass
class Erased:
    users: int = 0
    visits: int = 0
    profiles: int = 0

    def as_dict(self) -> dict:
        return {"users": self.users, "visits": self.visits, "profiles": self.profiles}


@dataclass
class Trimmed:
    from_day: int
    visits: int = 0
    profiles: int = 0


def app_tz(manifest: dict, app: App) -> ZoneInfo:
    """The zone the stored days are in: the manifest's once a time zone change has been
    committed (the catalog follows right after; see :func:`set_timezone`)."""
    return ZoneInfo(manifest.get("timezone") or app.timezone)


class _Commit:
    """A new state of one app being prepared: files written, then one manifest published."""

    def __init__(self, app_dir: Path, manifest: dict):
        self.dir = app_dir
        self.old = manifest
        self.new = dict(manifest)
        self.new["version"] = manifest["version"] + 1
        self.new["counts"] = dict(manifest["counts"])
        self.tag = f"v{self.new['version']:06d}"
        self.personal: list[str] = []  # files holding erased or expired records: deleted at once
        self.garbage: list[str] = []  # derived files: deleted after the grace period
        for sub in SUBFOLDERS:
            (app_dir / sub).mkdir(parents=True, exist_ok=True)

    def publish(self) -> dict:
        # the whole manifest may change: cached answers of every window are stale
        changes = [*self.old.get("changes", []), [self.new["version"], UNDATED_DAY]]
        self.new["changes"] = changes[-MAX_CHANGES:]
        now = time.time()
        self.new["garbage"] = [
            *self.old.get("garbage", []),
            *([g, now] for g in self.garbage),
        ]
        for sub in SUBFOLDERS:
            files.fsync_dir(self.dir / sub)
        published = write_manifest(self.dir, self.new)
        for rel in self.personal:
            _remove(self.dir / rel)
        for sub in {Path(rel).parts[0] for rel in self.personal}:
            files.fsync_dir(self.dir / sub)  # the deletions are durable too
        return published


def _rewrite_raw(c: _Commit, snap: AppSnapshot, drop_rows) -> tuple[int, int, list]:
    """Rewrite each raw segment where ``drop_rows(path) -> mask or None`` drops rows.

    Returns (visits dropped, profiles dropped, the dropped rows' tables)."""
    raw = []
    visits = profiles = 0
    dropped = []
    for i, rel in enumerate(c.old["raw"]):
        path = snap.path(rel)
        mask = drop_rows(path)
        if mask is None or not mask.any():
            raw.append(rel)
            continue
        table = pq.read_table(path)
        dropped.append(table.filter(pa.array(mask)))
        keep = table.filter(pa.array(~mask))
        if is_visit_segment(path):
            visits += int(mask.sum())
        else:
            profiles += int(mask.sum())
        c.personal.append(rel)
        if len(keep):
            stem = Path(rel).name.split("-")[0]
            new_rel = f"raw/{stem}-{c.tag}-r{i}.parquet"
            files.write_parquet(c.dir / new_rel, keep)
            raw.append(new_rel)
    c.new["raw"] = raw
    c.new["counts"]["visits"] -= visits
    c.new["counts"]["profiles"] -= profiles
    return visits, profiles, dropped


def _write_retained(c: _Commit, arrays: dict[str, np.ndarray], from_day: int) -> None:
    sub = f"meta/retained-{c.tag}"
    d = c.dir / sub
    d.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        files.write_npy(d / f"{name}.npy", a)
    files.fsync_dir(d)
    old = (c.old.get("retained") or {}).get("dir")
    if old:
        c.personal.append(old)
    c.new["retained"] = {"from_day": from_day, "dir": sub}


def _finish(
    c: _Commit, tz: ZoneInfo, erased: np.ndarray | None = None, before: int | None = None
) -> dict:
    new, garbage = rederive(c.dir, c.new, tz, c.tag, erased, before)
    c.new = new
    c.garbage.extend(garbage)
    return c.publish()


# -- erasure -------------------------------------------------------------------------------------


def forget(data_dir: Path, app: App, openids: Iterable[str]) -> Erased:
    """Erase these users of ``app`` from everything the data folder holds, in one commit.

    Unknown openids erase nothing. Afterwards every portrait equals the one computed as if
    their records had never been ingested.
    """
    targets = {o for o in openids if o and not o.startswith(TOMBSTONE)}
    with WriterLock(data_dir):
        return _forget(data_dir / "apps" / app.appid, app, targets)


def _forget(d: Path, app: App, targets: set[str]) -> Erased:
    out = Erased()
    manifest = read_manifest(d)
    if not targets or manifest["version"] == 0:
        return out
    snap = AppSnapshot(d, manifest)
    c = _Commit(d, manifest)
    # 1. openids -> tombstones (dense ids stay where they are)
    dead: list[int] = []
    segments = []
    base = 0
    for i, rel in enumerate(manifest["user_segments"]):
        col = files.read_arrow(snap.path(rel)).column("openid").to_pylist()
        hits = [j for j, o in enumerate(col) if o in targets]
        if hits:
            for j in hits:
                dead.append(base + j)
                col[j] = f"{TOMBSTONE}{base + j}"
            new_rel = f"users/openids-{c.tag}-e{i}.arrow"
            files.write_arrow(c.dir / new_rel, pa.table({"openid": pa.array(col, pa.string())}))
            segments.append(new_rel)
            c.personal.append(rel)
        else:
            segments.append(rel)
        base += len(col)
    if not dead:
        return out
    out.users = len(dead)
    c.new["user_segments"] = segments
    dead_arr = np.array(sorted(dead), dtype=np.int64)

    # 2. their rows leave the raw segments
    def drop(path: Path) -> np.ndarray:
        uid = pq.read_table(path, columns=["uid"]).column("uid").to_numpy()
        return np.isin(uid, dead_arr)

    out.visits, out.profiles, dropped = _rewrite_raw(c, snap, drop)

    # 3. the keys of their event ids (records without one: keyed with the dead user id)
    chunks = [ch for t in dropped for ch in t.column("event_id").chunks]
    ev = pa.chunked_array(chunks, pa.string()).combine_chunks().drop_null()
    if len(ev):
        gone = dedup.sort_keys(dedup.event_keys(ev))
        segs = snap.key_segments()
        allk = dedup.sort_keys(np.concatenate(segs)) if segs else np.zeros((0, 2), np.uint64)
        keep = ~dedup.contained(gone, allk)
        c.garbage.extend(manifest["keys"])
        rel = f"keys/keys-{c.tag}-e.npy"
        files.write_npy(c.dir / rel, np.asfortranarray(allk[keep]))
        c.new["keys"] = [rel]

    # 4. what retention kept of them
    kept = retained_arrays(snap)
    if kept is not None:
        kept["first_day"] = np.array(kept["first_day"])
        inside = dead_arr[dead_arr < len(kept["first_day"])]
        kept["first_day"][inside] = NO_FIRST_DAY
        for p in RETAINED_PROPS:
            alive = ~np.isin(kept[f"{p}_key"] >> SLOT_BITS, dead_arr)
            for col in ("key", "t", "val"):
                kept[f"{p}_{col}"] = kept[f"{p}_{col}"][alive]
        _write_retained(c, kept, manifest["retained"]["from_day"])
    _finish(c, app_tz(manifest, app), erased=dead_arr)
    return out


# -- retention -----------------------------------------------------------------------------------


def retention_due(manifest: dict, app: App, today_day: int | None = None) -> bool:
    if app.retention_days is None or manifest["version"] == 0:
        return False
    tz = app_tz(manifest, app)
    cutoff = (today(tz) if today_day is None else today_day) - app.retention_days
    first = retained_from(manifest)
    return first is None or first < cutoff


def apply_retention(data_dir: Path, app: App, today_day: int | None = None) -> Trimmed | None:
    """Delete the app's records of days before ``today - retention_days`` (one commit)."""
    with WriterLock(data_dir):
        return apply_retention_locked(data_dir, app, today_day)


def apply_retention_locked(
    data_dir: Path, app: App, today_day: int | None = None
) -> Trimmed | None:
    d = data_dir / "apps" / app.appid
    manifest = read_manifest(d)
    if not retention_due(manifest, app, today_day):
        return None
    tz = app_tz(manifest, app)
    cutoff = (today(tz) if today_day is None else today_day) - app.retention_days
    snap = AppSnapshot(d, manifest)
    c = _Commit(d, manifest)

    # 1. what later windows need of the deleted records: first days, latest gender and age
    kept: dict[str, np.ndarray] = {"first_day": np.array(snap.first_day, dtype=np.int32)}
    edge = day_slot(cutoff)
    for p in RETAINED_PROPS:
        log = snap.person_log(p)
        if log is None:
            key = np.zeros(0, np.int64)
            t = np.zeros(0, np.int64)
            val = np.zeros(0, np.int8)
        else:
            key, t, val = (np.asarray(log[k]) for k in ("key", "t", "val"))
            slot = key & ((1 << SLOT_BITS) - 1)
            old = np.flatnonzero((slot > UNDATED_SLOT) & (slot < edge))  # dated, deleted
            u = key[old] >> SLOT_BITS
            last = np.ones(len(old), dtype=bool)
            last[:-1] = u[1:] != u[:-1]  # the log is sorted by key: a user's last old entry
            old = old[last]
            key, t, val = key[old], t[old], val[old]
        kept[f"{p}_key"], kept[f"{p}_t"], kept[f"{p}_val"] = key, t, val

    # 2. rows of days before the cutoff leave the raw segments (days from times, in the zone
    # the store is in now)
    def drop(path: Path) -> np.ndarray | None:
        stats = pq.ParquetFile(path).metadata
        col = stats.schema.to_arrow_schema().get_field_index("day")
        lows = []
        for g in range(stats.num_row_groups):
            st = stats.row_group(g).column(col).statistics
            lows.append(st.min if st is not None and st.has_min_max else None)
        if lows and all(lo is not None and lo > cutoff + 1 for lo in lows):
            return None  # every row is well inside the retained range (a zone shifts days by 1)
        tcol = pq.read_table(path, columns=["time_ms"]).column("time_ms")
        dated = tcol.is_valid().to_numpy(zero_copy_only=False)
        t = tcol.fill_null(0).to_numpy()
        mask = np.zeros(len(t), dtype=bool)
        mask[dated] = local_days(t[dated], tz) < cutoff
        return mask

    visits, profiles, _ = _rewrite_raw(c, snap, drop)
    _write_retained(c, kept, cutoff)
    _finish(c, tz, before=cutoff)
    return Trimmed(cutoff, visits, profiles)


# -- time zone ----------------------------------------------------------------------------------


def set_timezone(data_dir: Path, catalog: Catalog, appid: str, timezone: str) -> int:
    """Re-derive the app's days in ``timezone`` from its stored records, then record the zone.

    Refused once retention deleted records (their days cannot be computed again). Returns the
    number of stored visits whose days were re-derived.
    """
    check_timezone(timezone)
    app = catalog.get(appid)
    if app is None:
        raise CatalogError(f"app {appid!r} is not registered")
    d = data_dir / "apps" / appid
    with WriterLock(data_dir):
        manifest = read_manifest(d)
        if manifest.get("retained"):
            raise CatalogError(
                f"records of {appid} before the retained range were deleted by its retention "
                "policy, so its days cannot be recomputed in another time zone"
            )
        current = manifest.get("timezone") or app.timezone
        if manifest["version"] > 0 and current != timezone:
            c = _Commit(d, manifest)
            c.new["timezone"] = timezone
            _finish(c, ZoneInfo(timezone))
        # the manifest is the commit point; the catalog follows (the writer already uses the
        # manifest's zone, so a crash in between leaves stored days and new days in one zone)
        catalog.set_timezone(appid, timezone)
    return manifest["counts"]["visits"]
