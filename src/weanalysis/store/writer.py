"""Write side of the store: one writer at a time (a file lock), copy-on-write commits.

A commit writes new immutable files (a raw Parquet segment with every accepted record, a run
of each day summary it touched, runs of the person logs and first days, a key segment and a
user segment), fsyncs them, and then replaces the app's manifest atomically. A crash at any
point leaves the previous manifest in force: nothing half-written is ever read, and nothing
acknowledged is lost; what a killed commit left behind is removed when a writer next opens
the app.

A commit writes O(its own records): each derived structure is a list of sorted runs, and the
newest run is merged into the one before it only while it is at least half its size (or when
there are too many), so every entry is rewritten O(log n) times and a live request of ten
visits adds a few small files instead of copying the day.

Superseded files are deleted as soon as no reader holds a lease on a snapshot that names them
(:mod:`weanalysis.store.leases`), before a commit writes anything (a full disk recovers by
itself) and right after it publishes.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from weanalysis.dims import regions
from weanalysis.errors import StoreError, StoreReadOnlyError
from weanalysis.records.columns import Coded
from weanalysis.store import dedup, files, view
from weanalysis.store.catalog import App
from weanalysis.store.days import MS_PER_DAY, local_days
from weanalysis.store.gc import SUBFOLDERS, collect_garbage, remove, remove_orphans
from weanalysis.store.integrity import verified
from weanalysis.store.rows import (
    RAW_COMMON,
    RAW_VISIT,
    REBUILD_ROWS,
    TIME_ABSENT,
    UNDATED_DAY,
    Derived,
    derived_names,
    rows_of_raw,
)
from weanalysis.store.runs import (
    first_base,
    fold_first,
    load_day,
    load_person,
    merge_next,
    merges_into_previous,
    stored_day,
)
from weanalysis.store.snapshot import (
    FORMAT,
    MANIFEST,
    AppSnapshot,
    empty_manifest,
    read_manifest,
    write_manifest,
)
from weanalysis.store.summaries import (
    UNDATED_SLOT,
    base_run,
    day_slot,
    merge_day,
    merge_logs,
    merge_summaries,
    new_entries,
)
from weanalysis.store.users import UserIndex

# The manifest remembers the earliest day touched by each of its last commits, so that a reader
# holding a cached answer for a window ending on day e can tell whether it is still exact.
MAX_CHANGES = 1024
# Key segments are merged when there are more than this many (LSM-style).
MAX_KEY_SEGMENTS = 8

log = logging.getLogger("weanalysis.store")


class AppRemoved(StoreError):
    """The app was removed while its records were on their way to the store."""


@dataclass
class Batch:
    """Validated (and, for visits, enriched) records of one kind for one app, in input order."""

    kind: str
    openid: pa.Array
    time_ms: np.ndarray
    content: np.ndarray  # (n, 2) uint64: the record's content key, without the user
    event_id: pa.Array  # string, null where the record has no event id
    gender: np.ndarray  # int8, 0 unknown
    age: np.ndarray  # int16, -1 unknown
    age_bucket: np.ndarray  # int8, 0 unknown
    location: np.ndarray | None = None  # int16 location codes (visits)
    platform: np.ndarray | None = None  # int8 (visits)
    device: Coded | None = None  # device names (visits)
    raw: dict[str, pa.Array] = field(default_factory=dict)  # extra columns kept in the segment
    events: np.ndarray | None = None  # (n, 2) keys of the event ids, when computed beforehand

    def __len__(self) -> int:
        return len(self.time_ms)


@dataclass
class CommitResult:
    accepted: int = 0
    duplicates: int = 0
    version: int = 0
    kept: np.ndarray | None = None  # per batch row: True if stored, False if a duplicate
    oldest_day: int | None = None  # the earliest day of the records stored (None: none dated)


class _AppState:
    """What the writer keeps in memory between commits of one app."""

    def __init__(self, app_dir: Path, manifest: dict | None):
        if manifest is None:  # a rebuild: users as they are, devices numbered afresh
            return
        self.manifest = manifest
        snap = AppSnapshot(app_dir, manifest)
        self.users = UserIndex.of_segments(snap.path(s) for s in manifest["user_segments"])
        self.num_users = manifest["users"]
        self.keys = snap.key_segments()
        names = snap.device_names[1:]
        self.device_names: list[str] = list(names)
        self.device_code: dict[str, int] = {n: i + 1 for i, n in enumerate(names)}


@dataclass
class _Commit:
    """One commit in the making: the manifest it will publish and what it supersedes."""

    dir: Path
    old: dict
    new: dict
    tag: str
    garbage: list[str] = field(default_factory=list)
    touched: set[str] = field(default_factory=lambda: {"raw"})

    @classmethod
    def on(cls, app_dir: Path, old: dict) -> _Commit:
        version = old["version"] + 1
        new = dict(old)
        new["version"] = version
        new["days"] = dict(old["days"])
        new["persons"] = dict(old["persons"])
        new["counts"] = dict(old["counts"])
        return cls(app_dir, old, new, f"v{version:06d}")

    @property
    def version(self) -> int:
        return self.new["version"]


class Writer:
    """Holds the store's write lock; commits batches app by app."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._catalog: sqlite3.Connection | None = None  # to see that an app is still there
        self._states: dict[str, _AppState] = {}
        self._opened: set[str] = set()  # apps whose orphans this writer has removed
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._io = ThreadPoolExecutor(max_workers=1)

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
        self._pool.shutdown()
        self._io.shutdown()
        # the apps' users and keys (~1 GB at 6.5M users, 50M keys) go now, not whenever a
        # cycle holding this writer is collected (an Ingestor's validator holds one)
        self._states.clear()
        _give_back_memory()

    def app_dir(self, appid: str) -> Path:
        return self.data_dir / "apps" / appid

    def _state(self, appid: str) -> _AppState:
        d = self.app_dir(appid)
        manifest = read_manifest(d)
        if appid not in self._opened:
            if manifest["version"] == 0 and not (d / MANIFEST).exists():
                # the empty manifest goes first: from now on, stored files without a manifest
                # can only mean a lost manifest (see read_manifest), never a first commit
                d.mkdir(parents=True, exist_ok=True)
                manifest = write_manifest(d, manifest)
            for sub in SUBFOLDERS:
                (d / sub).mkdir(parents=True, exist_ok=True)
            remove_orphans(d, manifest)
            self._opened.add(appid)
        st = self._states.get(appid)
        if st is None or st.manifest["version"] != manifest["version"]:
            st = self._states[appid] = _AppState(d, manifest)
        return st

    def commit(self, app: App, batch: Batch) -> CommitResult:
        """Store a batch durably; returns how many were accepted and how many were duplicates."""
        if len(batch) == 0:
            return CommitResult(kept=np.zeros(0, dtype=bool))
        # The lock is taken per commit, so that several writers (CLI ingests, the server's
        # collectors) interleave; each re-reads the manifest under the lock.
        with WriterLock(self.data_dir):
            if app is None or not self._registered(app):
                # removed (app remove holds this lock) since the records were validated: storing
                # them would bring its folder back
                raise AppRemoved(f"app {getattr(app, 'appid', None)!r} is no longer registered")
            try:
                result = self._commit(app, batch)
                self._retain(app, result.oldest_day)
                return result
            except BaseException:
                # In-memory state (user ids, devices, keys) may be ahead of the disk, and files
                # of this commit may be on disk: reload, and remove them at the next commit.
                self._states.pop(app.appid, None)
                self._opened.discard(app.appid)
                raise

    def _registered(self, app: App) -> bool:
        if self._catalog is None:
            self._catalog = sqlite3.connect(
                self.data_dir / "catalog.sqlite", timeout=30, check_same_thread=False
            )
        row = self._catalog.execute(
            "SELECT 1 FROM apps WHERE appid = ? AND created_at = ?", (app.appid, app.created_at)
        ).fetchone()
        return row is not None

    def _retain(self, app: App, oldest_day: int | None) -> None:
        """The app's retention pass, when one is due after this commit (a new day, or records
        of days before the retained range): one more rebuild under the lock already held (see
        :mod:`weanalysis.store.retention`). The commit before it is durable whatever happens
        here; a pass that fails is logged and done again at the next commit or by gc."""
        row = self._catalog.execute(
            "SELECT retention_days FROM apps WHERE appid = ?", (app.appid,)
        ).fetchone()
        if row is None or row[0] is None:
            return
        from weanalysis.store import retention  # it builds on this module

        manifest = self._states[app.appid].manifest
        tz = retention.zone_of(manifest, app.timezone)
        cutoff = retention.due(manifest, int(row[0]), tz, oldest=oldest_day)
        if cutoff is None:
            return
        out = retention.Trimmed(cutoff)
        try:
            rw = retention.rewrites(cutoff, out)
            self._rebuild(app, rw["rewrite_raw"], None, None, None, rw["rewrite_retained"])
            log.info("retention of %s: %s", app.appid, out.as_dict())
        except Exception:
            log.exception("retention of %s failed (done again at the next commit)", app.appid)
        finally:
            self._states.pop(app.appid, None)
            self._opened.discard(app.appid)

    def _commit(self, app: App, batch: Batch) -> CommitResult:
        st = self._state(app.appid)
        d = self.app_dir(app.appid)
        collect_garbage(d, st.manifest["garbage"])  # first: a full disk frees space here
        c = _Commit.on(d, st.manifest)

        # 1. users and duplicates
        uid_all, fresh = self._lookup_uids(st, batch.openid)
        keys, keep = self._new_keys(st, batch, uid_all)
        idx = np.flatnonzero(keep)
        result = CommitResult(accepted=len(idx), duplicates=len(batch) - len(idx), kept=keep)
        if len(idx) == 0:
            result.version = c.old["version"]
            return result
        uid = self._assign_users(c, st, uid_all[idx], fresh)
        keys = _final_keys(keys[idx], batch, idx, uid_all[idx], uid)

        # 2. the raw records, compressed and written (Arrow, without the GIL) while the
        # derived structures are merged; both are durable before the manifest names them
        rows = self._derived_rows(app, st, batch, idx, uid)
        if rows.dated.any():
            result.oldest_day = int(rows.day[rows.dated].min())
        raw_job = self._io.submit(self._write_raw, c, app, batch, idx, rows)
        self._derive(c, st, rows)
        raw_job.result()
        self._merge_small_segments(c)

        # 3. key segments, then publish
        self._append_keys(c, st, keys)
        self._publish(c, st, rows)
        result.version = c.version
        return result

    # -- compaction ---------------------------------------------------------------------------

    def compact(self, app: App) -> int:
        """Merge every derived structure's runs into one (answers unchanged; cached answers
        stay valid). Bulk ingests end with it, so queries read one run per day and log.
        Returns the version in force."""
        with WriterLock(self.data_dir):
            try:
                return self._compact(app)
            except BaseException:
                self._states.pop(app.appid, None)
                self._opened.discard(app.appid)
                raise

    def _compact(self, app: App) -> int:
        st = self._state(app.appid)
        old = st.manifest
        d = self.app_dir(app.appid)
        days = [dn for dn, runs in old["days"].items() if len(runs) > 1]
        persons = [k for k, runs in old["persons"].items() if runs and len(runs) > 1]
        view_ok = old.get("view") is None and not old["days"]
        snap = AppSnapshot(d, old)
        if old.get("view"):
            v = old["view"]
            view_ok = v["day"] == max(snap.day_numbers()) and snap.unchanged_up_to(
                v["version"], v["day"]
            )
        counted = all(snap.counts_valid(int(dn)) for dn in old["days"])
        if not days and not persons and len(old["first_day"]) <= 1 and view_ok and counted:
            return old["version"]
        collect_garbage(d, old["garbage"])
        c = _Commit.on(d, old)

        def one_day(dn: str) -> tuple[str, list]:
            runs = old["days"][dn]
            merged = load_day(verified(d, old, runs[0][0]))
            for name, _ in runs[1:]:
                merged = merge_summaries(merged, load_day(verified(d, old, name)))
            name = f"days/{dn}-{c.tag}"
            self._write_dir(d / name, stored_day(merged))
            return dn, [[name, len(merged["uid"])]]

        for dn, runs in self._pool.map(one_day, days):
            c.garbage.extend(n for n, _ in old["days"][dn])
            c.new["days"][dn] = runs
        for key in persons:
            runs = old["persons"][key]
            log = load_person(verified(d, old, runs[0][0]))
            for name, _ in runs[1:]:
                log = merge_logs(log, load_person(verified(d, old, name)))
            name = f"persons/{key}-{c.tag}"
            self._write_dir(d / name, base_run(log, st.num_users))
            c.garbage.extend(n for n, _ in runs)
            c.new["persons"][key] = [[name, len(log["key"])]]
        if len(old["first_day"]) > 1:
            runs = old["first_day"]
            first = files.load_npy(verified(d, old, runs[0][0]), mmap=False)
            for name, _ in runs[1:]:
                first = first_base(
                    first, files.load_npy(verified(d, old, name), mmap=False, ndim=2), st.num_users
                )
            name = f"meta/first_day-{c.tag}.npy"
            files.write_npy(d / name, first)
            c.garbage.extend(n for n, _ in runs)
            c.new["first_day"] = [[name, len(first)]]
        if c.new["days"]:
            self._build_view(c, st)
            self._count_days(c)
        c.new["garbage"] = [g for g in old.get("garbage", []) if (d / g[0]).exists()]
        c.new["garbage"] += [[g, c.version] for g in c.garbage]
        for sub in ("days", "persons", "meta"):
            files.fsync_dir(d / sub)
        # no entry in "changes": no answer changed
        st.manifest = c.new = write_manifest(d, c.new)
        collect_garbage(d, c.new["garbage"])
        return c.version

    def _build_view(self, c: _Commit, st: _AppState) -> None:
        """The recent-window view (see :func:`weanalysis.store.view.build`) as of the last day
        with visits, named by this commit's manifest."""
        name = f"meta/view-{c.tag}"
        built = view.build(AppSnapshot(c.dir, c.new), st.num_users)
        self._write_dir(c.dir / name, built["arrays"])
        if c.old.get("view"):
            c.garbage.append(c.old["view"]["dir"])
        c.new["view"] = {"dir": name, "day": built["day"], "version": c.version}

    def _count_days(self, c: _Commit) -> None:
        """Per-day aggregates (the 1-day answers) of the days whose aggregate is missing or
        out of date; each stays in use while no commit touches a day up to its own."""
        snap = AppSnapshot(c.dir, c.new)
        counts = dict(c.old.get("day_counts") or {})
        stale = [int(dn) for dn in c.new["days"] if not snap.counts_valid(int(dn))]

        def one(day: int) -> tuple[int, str]:
            name = f"meta/counts-{day}-{c.tag}.npy"
            files.write_npy(c.dir / name, view.day_counts(snap, day))
            return day, name

        for day, name in self._pool.map(one, stale):
            if str(day) in counts:
                c.garbage.append(counts[str(day)][0])
            counts[str(day)] = [name, c.version]
        c.new["day_counts"] = counts

    # -- rebuild ------------------------------------------------------------------------------

    def rebuild(
        self,
        app: App,
        rewrite_raw: Callable[[Path, dict, str], list[str]] | None = None,
        progress: Callable[[int, int], None] | None = None,
        rewrite_users: Callable[[Path, dict, str], dict] | None = None,
        timezone: str | None = None,
        rewrite_retained: Callable[[Path, dict, str], dict | None] | None = None,
    ) -> dict:
        """Re-derive every derived structure of an app (day summaries, first days, person
        logs, device names, the view and per-day counts) from its stored raw records, and
        publish them in one new version, under the write lock.

        This is how a data folder of an older storage format is converted, and how records
        leave every answer (forget, retention): ``rewrite_raw(app_dir, manifest, tag)`` is
        called first, under the lock; it writes new raw segments under ``raw/`` (names
        carrying ``tag``, e.g. ``raw/visits-<tag>-0.parquet``) and returns the new list of
        raw segment names; the ones it drops become garbage (deleted once no reader needs
        them). User ids, user segments and idempotency keys are kept as they are (keys cannot
        be re-derived: they hash input fields the raw segments keep only after enrichment).
        ``progress`` gets (rows done, rows in all).

        ``rewrite_users(app_dir, manifest, tag)``, also called under the lock (before
        ``rewrite_raw``), may replace them: it returns new ``user_segments`` and/or ``keys``
        lists (an erasure writes openids as tombstones and drops the keys of erased event ids);
        the files it drops become garbage like the raw ones. ``timezone`` records the zone the
        rewritten raw segments' days are in (``app set --timezone``); commits after it compute
        days in that zone.

        The app's retained state (what retention kept of deleted records, see
        :mod:`weanalysis.store.retention`) is derived first, before the raw records.
        ``rewrite_retained(app_dir, manifest, tag)``, called under the lock after
        ``rewrite_users`` and before ``rewrite_raw``, may replace it: it returns the new
        ``retained`` entry of the manifest (None: no retained state). Returns the published
        manifest.
        """
        with WriterLock(self.data_dir):
            try:
                return self._rebuild(
                    app, rewrite_raw, progress, rewrite_users, timezone, rewrite_retained
                )
            finally:
                self._states.pop(app.appid, None)
                self._opened.discard(app.appid)

    def _rebuild(
        self, app: App, rewrite_raw, progress, rewrite_users, timezone, rewrite_retained=None
    ) -> dict:
        d = self.app_dir(app.appid)
        old = read_manifest(d, any_format=True)
        for sub in SUBFOLDERS:
            (d / sub).mkdir(parents=True, exist_ok=True)
        if old.get("format") == FORMAT:
            remove_orphans(d, old)
        version = old["version"] + 1
        base = empty_manifest()
        kept = ("version", "next_seq", "users", "user_segments", "keys", "raw", "garbage")
        base.update({k: old[k] for k in kept})
        zone = timezone or old.get("timezone")
        if zone:
            base["timezone"] = zone
        replaced: dict[str, list[str]] = {}
        if old.get("format") != FORMAT:  # an older format: its segments in this one first
            rewrite_users = rewrite_users or _migrated_users
            rewrite_raw = rewrite_raw or _migrated_raw
        if rewrite_users is not None:
            replaced = dict(rewrite_users(d, old, f"v{version:06d}"))
            if set(replaced) - {"user_segments", "keys"}:
                raise ValueError(f"rewrite_users replaced {sorted(replaced)}")
            base.update(replaced)
            files.fsync_dir(d / "users")
            files.fsync_dir(d / "keys")
        if old.get("retained"):
            base["retained"] = old["retained"]
        if rewrite_retained is not None:
            base["retained"] = rewrite_retained(d, old, f"v{version:06d}")
            files.fsync_dir(d / "meta")
        raw = None
        if rewrite_raw is not None:
            raw = list(rewrite_raw(d, old, f"v{version:06d}"))
            files.fsync_dir(d / "raw")
            base["raw"] = raw
        c = _Commit.on(d, base)
        c.new["changes"] = [[version, UNDATED_DAY]]  # every answer may change
        st = _AppState(d, None)
        st.num_users = old["users"]
        st.device_names, st.device_code = [], {}
        # what retention kept of deleted records is older than every raw record: first
        self._derive_retained(c, st, old)
        # the raw records are the source of truth: a damaged one is never re-derived from
        segments = [verified(d, old, name) for name in c.new["raw"]]
        total = sum(pq.ParquetFile(p).metadata.num_rows for p in segments)
        done = 0
        for name, path in zip(c.new["raw"], segments, strict=True):
            visit = Path(name).name.startswith("visits-")
            cols = [*RAW_COMMON, *(RAW_VISIT if visit else ())]
            for i, rb in enumerate(pq.ParquetFile(path).iter_batches(REBUILD_ROWS, columns=cols)):
                c.tag = f"v{version:06d}r{done:012d}{i:04d}"  # unique per run written
                self._derive(
                    c, st, rows_of_raw(rb, visit, lambda names: self._device_codes(st, names))
                )
                # runs merged away in this rebuild were never published: delete them now
                for g in c.garbage:
                    remove(d / g)
                c.garbage.clear()
                done += rb.num_rows
                c.new["counts"]["visits" if visit else "profiles"] += rb.num_rows
                if progress:
                    progress(done, total)
        superseded = derived_names(old)
        if raw is not None:
            superseded += [r for r in old["raw"] if r not in set(raw)]
        for key, names in replaced.items():
            superseded += [n for n in old[key] if n not in set(names)]
        if old.get("retained") and old["retained"] != c.new.get("retained"):
            superseded.append(old["retained"]["dir"])
        c.new["garbage"] = [g for g in old.get("garbage", []) if (d / g[0]).exists()]
        c.new["garbage"] += [[g, version] for g in superseded]
        for sub in SUBFOLDERS:
            files.fsync_dir(d / sub)
        c.new = write_manifest(d, c.new, known=old.get("checksums"))
        collect_garbage(d, c.new["garbage"])
        self._compact(app)  # one run per structure, and the recent-window view
        return read_manifest(d)

    def _derive_retained(self, c: _Commit, st: _AppState, old: dict) -> None:
        """The retained state's first days and person entries, as the oldest rows."""
        from weanalysis.store import retention  # it builds on this module

        if not c.new.get("retained"):
            c.new.pop("retained", None)
            return
        arrays = retention.load(c.dir, old, c.new["retained"])
        version = c.version
        for i, (kind, rows) in enumerate(retention.rows_of(arrays)):
            c.tag = f"v{version:06d}k{i}"  # unique per run written, before the raw records'
            if kind == "first":
                self._update_first_days(c, st, rows)
            else:
                self._update_persons(c, st, rows)
            for g in c.garbage:  # merged away in this rebuild, never published
                remove(c.dir / g)
            c.garbage.clear()

    # -- phase 1: users and keys --------------------------------------------------------------

    def _lookup_uids(self, st: _AppState, openid: pa.Array) -> tuple[np.ndarray, pa.Array]:
        """uid per row; openids not seen before get tentative ids from ``num_users`` on, in
        the order of their first row; returns them too (``fresh``, in that order)."""
        enc = openid.dictionary_encode()
        codes = st.users.lookup(enc.dictionary)
        new = codes < 0
        codes[new] = st.num_users + np.arange(int(new.sum()), dtype=np.int64)
        fresh = enc.dictionary.filter(pa.array(new))
        return codes[enc.indices.to_numpy(zero_copy_only=False)], fresh

    def _new_keys(
        self, st: _AppState, batch: Batch, uid_all: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Idempotency keys, and which rows are new: not repeated in the batch nor stored."""
        keys = dedup.record_keys(batch.content, uid_all, batch.event_id, batch.events)
        keep = dedup.first_occurrences(keys)
        for seg in st.keys:
            keep &= ~seg.contains(keys)
        return keys, keep

    def _assign_users(
        self, c: _Commit, st: _AppState, uid: np.ndarray, fresh: pa.Array
    ) -> np.ndarray:
        """Make tentative ids final (only new users with an accepted record get one) and
        write the new users' segment."""
        base = st.num_users
        if len(fresh) == 0:
            return uid.astype(np.uint32)
        used = np.unique(uid[uid >= base])
        remap = np.full(len(fresh), -1, dtype=np.int64)
        remap[used - base] = np.arange(base, base + len(used), dtype=np.int64)
        out = uid.copy()
        is_new = out >= base
        out[is_new] = remap[out[is_new] - base]
        new_openids = fresh.take(pa.array(used - base)).cast(pa.string())
        st.users.add(new_openids, base)
        st.num_users = base + len(new_openids)
        c.new["users"] = st.num_users
        seg = f"users/openids-{c.tag}.arrow"
        files.write_arrow(c.dir / seg, pa.table({"openid": new_openids}))
        c.new["user_segments"] = [*c.old["user_segments"], seg]
        c.touched.add("users")
        return out.astype(np.uint32)

    def _merge_small_segments(self, c: _Commit) -> None:
        """Small raw and user segments (live commits write one each) are merged like runs:
        the newest two of a kind while the last is at least half the size of the one before,
        up to SMALL_SEGMENT_ROWS, so their number and their per-file overhead stay small."""
        for key, read, write in (
            ("raw", _read_parquet, files.write_parquet),
            ("user_segments", files.read_arrow, files.write_arrow),
        ):
            names = list(c.new[key])
            merges = 0
            while len(names) >= 2 and _kind(names[-1]) == _kind(names[-2]):
                n_last, n_prev = (_rows(c.dir / n) for n in names[-2:][::-1])
                if n_prev + n_last > SMALL_SEGMENT_ROWS or 2 * n_last < n_prev:
                    break
                last = read(verified(c.dir, c.old, names[-1]))
                prev = read(verified(c.dir, c.old, names[-2]))
                merges += 1
                folder, stem = names[-1].split("/")[0], _kind(names[-1])
                suffix = ".parquet" if key == "raw" else ".arrow"
                name = f"{folder}/{stem}-{c.tag}-m{merges}{suffix}"
                write(c.dir / name, _concat([prev, last]))
                c.garbage.extend(names[-2:])  # this commit's own: deleted at once
                names[-2:] = [name]
            c.new[key] = names

    def _append_keys(self, c: _Commit, st: _AppState, keys: np.ndarray) -> None:
        """Keys of what was accepted: a new sorted segment; the newest segments are merged
        while the last is at least half the size of the one before (sizes stay geometric, so
        few segments to search and each key is rewritten only O(log n) times)."""
        st.keys.append(dedup.KeySet.of(keys))
        names = [*c.old["keys"], f"keys/keys-{c.tag}.parquet"]
        st.keys[-1].save(c.dir / names[-1])
        merges = 0
        while merges_into_previous([len(k) for k in st.keys], MAX_KEY_SEGMENTS):
            merged = st.keys[-2].merge(st.keys[-1])  # empties both, part by part
            st.keys[-2:] = [merged]
            c.garbage.extend(names[-2:])
            merges += 1
            name = f"keys/keys-{c.tag}-m{merges}.parquet"
            merged.save(c.dir / name)
            names[-2:] = [name]
        c.new["keys"] = names
        c.touched.add("keys")

    # -- phase 2: raw records and derived structures ------------------------------------------

    def _derived_rows(
        self, app: App, st: _AppState, batch: Batch, idx: np.ndarray, uid: np.ndarray
    ) -> Derived:
        time_ms = batch.time_ms[idx]
        dated = time_ms != TIME_ABSENT
        day = np.full(len(idx), UNDATED_DAY, dtype=np.int32)
        # the manifest names the zone once the app's zone was changed (the catalog follows)
        zone = st.manifest.get("timezone")
        day[dated] = local_days(time_ms[dated], ZoneInfo(zone) if zone else app.tz)
        rows = Derived(uid, time_ms, day, batch.gender[idx], batch.age_bucket[idx], False)
        if batch.kind == "visit":
            rows.visit = True
            rows.loc = batch.location[idx]
            rows.plat = batch.platform[idx]
            rows.dev = self._device_codes(st, batch.device.take(idx))
        return rows

    def _write_raw(self, c: _Commit, app: App, batch: Batch, idx: np.ndarray, rows: Derived):
        take = pa.array(idx, type=pa.int64())
        seq = np.arange(c.old["next_seq"], c.old["next_seq"] + len(idx), dtype=np.int64)
        dated = rows.dated
        age = batch.age[idx]
        raw = {
            "seq": seq,
            "uid": rows.uid,  # its openid is in the user segments (users/openids-*.arrow)
            "time_ms": pa.array(rows.time_ms, pa.int64(), mask=~dated),
            "day": pa.array(rows.day, pa.int32(), mask=~dated),
            "gender": rows.gender,
            "age": pa.array(age, pa.int16(), mask=age < 0),
        }
        if rows.visit:
            raw.update(
                province_id=regions.LOC_PROVINCE[rows.loc],
                city_id=regions.LOC_CITY[rows.loc],
                platform=rows.plat,
                device=batch.device.take(idx).arrow(),
            )
        raw["event_id"] = batch.event_id.take(take)
        for k, v in batch.raw.items():
            raw[k] = v.take(take)
        seg = f"raw/{batch.kind}s-{c.tag}.parquet"
        files.write_parquet(c.dir / seg, pa.table(raw))
        c.new["raw"] = [*c.old["raw"], seg]
        c.new["next_seq"] = int(seq[-1]) + 1
        c.new["counts"][batch.kind + "s"] += len(idx)

    def _derive(self, c: _Commit, st: _AppState, rows: Derived) -> None:
        """Everything derived from raw records: day summaries, first days, person logs, device
        names. Shared by commits and :meth:`rebuild`."""
        if rows.visit:
            self._update_days(c, rows)
            self._update_first_days(c, st, rows)
            self._update_devices(c, st)
        self._update_persons(c, st, rows)

    def _update_days(self, c: _Commit, rows: Derived) -> None:
        """A new run of each touched day's summary, in parallel (numpy releases the GIL)."""
        order = np.argsort(rows.day, kind="stable")
        bounds = np.flatnonzero(np.diff(rows.day[order])) + 1

        def one(sel: np.ndarray) -> tuple[str, list]:
            dn = int(rows.day[sel[0]])
            # times as int32 offsets from the day's start (exact: a local day spans < 2^31 ms)
            t = (rows.time_ms[sel] - dn * MS_PER_DAY).astype(np.int32)
            values = {"loc": rows.loc[sel], "plat": rows.plat[sel], "dev": rows.dev[sel]}
            run = merge_day(None, rows.uid[sel], t, values)
            runs = self._push_run(
                c,
                c.new["days"].get(str(dn), []),
                run,
                load=lambda name: load_day(verified(c.dir, c.old, name)),
                merge=merge_summaries,
                name=f"days/{dn}-{c.tag}",
                stored=stored_day,
            )
            return str(dn), runs

        for dn, runs in self._pool.map(one, np.split(order, bounds)):
            c.new["days"][dn] = runs
        c.touched.add("days")

    def _update_first_days(self, c: _Commit, st: _AppState, rows: Derived) -> None:
        """A run of (uid, first day) pairs of this commit's users; the base run is a full
        array by uid. Runs merge like the others (see :meth:`_push_run`)."""
        order = np.lexsort((rows.day, rows.uid))
        u, dd = rows.uid[order], rows.day[order]
        first = np.ones(len(u), dtype=bool)
        first[1:] = u[1:] != u[:-1]
        data = np.stack([u[first].astype(np.int32), dd[first]], axis=1)
        runs = list(c.new["first_day"])
        while merge_next(runs, len(data)):
            name, _ = runs.pop()
            prev = files.load_npy(verified(c.dir, c.old, name), mmap=False, ndim=None)
            data = (
                first_base(prev, data, st.num_users) if prev.ndim == 1 else fold_first(prev, data)
            )
            c.garbage.append(name)
        if not runs and data.ndim == 2:
            data = first_base(np.zeros(0, np.int32), data, st.num_users)
        name = f"meta/first_day-{c.tag}.npy"
        files.write_npy(c.dir / name, data)
        runs.append([name, len(data)])
        c.new["first_day"] = runs
        c.touched.add("meta")

    def _update_devices(self, c: _Commit, st: _AppState) -> None:
        if not st.device_names:
            return
        if c.new["devices"] is not None and not _devices_changed(c.dir, c.new, st):
            return
        name = f"meta/devices-{c.tag}.json"
        files.atomic_write_bytes(c.dir / name, orjson.dumps(st.device_names))
        if c.new["devices"]:
            c.garbage.append(c.new["devices"])
        c.new["devices"] = name
        c.touched.add("meta")

    def _update_persons(self, c: _Commit, st: _AppState, rows: Derived) -> None:
        """Person properties (gender, age bucket) from every record that knows them."""
        slot = np.where(rows.dated, day_slot(rows.day.astype(np.int64)), UNDATED_SLOT)
        for name, values in (("gender", rows.gender), ("age", rows.age_bucket)):
            known = values > 0
            if not known.any():  # nothing new about this property: the log stays as it is
                continue
            run = new_entries(rows.uid[known], slot[known], rows.time_ms[known], values[known])
            c.new["persons"][name] = self._push_run(
                c,
                c.new["persons"][name] or [],
                run,
                load=lambda sub: load_person(verified(c.dir, c.old, sub)),
                merge=merge_logs,
                name=f"persons/{name}-{c.tag}",
                base=lambda log: base_run(log, st.num_users),
            )
            c.touched.add("persons")

    def _push_run(
        self, c: _Commit, runs: list, run: dict, load, merge, name: str, base=None, stored=None
    ):
        """Append a run, first merging it with the newest runs while it is at least half the
        size of the one before (or there are too many); returns the new list of runs.
        ``base`` adds what the first run holds; ``stored`` turns a run into its files."""
        runs = list(runs)
        size = len(next(iter(run.values())))
        while merge_next(runs, size):
            prev_name, _ = runs.pop()
            run = merge(load(prev_name), run)
            size = len(next(iter(run.values())))
            c.garbage.append(prev_name)
        if not runs and base is not None:
            run = base(run)
        self._write_dir(c.dir / name, stored(run) if stored else run)
        runs.append([name, size])
        return runs

    def _device_codes(self, st: _AppState, names: Coded) -> np.ndarray:
        table = np.zeros(len(names.values) + 1, dtype=np.int32)
        for i, name in enumerate(names.values):
            if name is None:
                continue
            code = st.device_code.get(name)
            if code is None:
                st.device_names.append(name)
                code = st.device_code[name] = len(st.device_names)
            table[i] = code
        return table[names.idx]

    # -- phase 3: publish and collect garbage -------------------------------------------------

    def _publish(self, c: _Commit, st: _AppState, rows: Derived) -> None:
        """Note the earliest day this commit can affect (an undated record: all), name the
        superseded files as garbage, make the manifest durable, then delete what no reader
        can still need."""
        dated = rows.dated
        earliest = int(rows.day[dated].min()) if dated.all() else UNDATED_DAY
        c.new["changes"] = [*c.old.get("changes", []), [c.version, earliest]][-MAX_CHANGES:]
        garbage = [g for g in c.old.get("garbage", []) if (c.dir / g[0]).exists()]
        c.new["garbage"] = garbage + [[g, c.version] for g in c.garbage]
        for sub in sorted(c.touched):  # new directory entries must be durable before the manifest
            files.fsync_dir(c.dir / sub)
        st.manifest = c.new = write_manifest(c.dir, c.new)
        collect_garbage(c.dir, c.new["garbage"])

    @staticmethod
    def _write_dir(path: Path, arrays: dict) -> None:
        """A run's folder: each array a ``.npy`` (memory-mapped by queries), each table a
        compressed ``.parquet`` (read whole, by merges)."""
        path.mkdir(parents=True, exist_ok=True)
        for k, v in arrays.items():
            if isinstance(v, pa.Table):
                files.write_parquet(path / f"{k}.parquet", v)
            else:
                files.write_npy(path / f"{k}.npy", v)
        files.fsync_dir(path)


SMALL_SEGMENT_ROWS = 1 << 18


def _give_back_memory() -> None:
    """Return freed memory to the system: Arrow's pool keeps it for reuse, and glibc's heap
    keeps freed numpy arrays under its mmap threshold (after an ingest of 20M visits, 0.9 GB
    of 1.3 GB resident was such free memory)."""
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc's; elsewhere there is none to call
    except (OSError, AttributeError):
        pass


def _migrated_raw(app_dir: Path, manifest: dict, tag: str) -> list[str]:
    """An older format's raw segments in this one: without openids (the user segments hold
    them), with this format's encodings; one segment at a time."""
    out = []
    for i, rel in enumerate(manifest["raw"]):
        table = pq.read_table(verified(app_dir, manifest, rel))
        if "openid" in table.column_names:
            table = table.drop_columns(["openid"])
        name = f"raw/{_kind(rel)}-{tag}-r{i}.parquet"
        files.write_parquet(app_dir / name, table)
        out.append(name)
    return out


def _migrated_users(app_dir: Path, manifest: dict, tag: str) -> dict:
    """An older format's user segments (compressed now) and key segments (128-bit ``.npy``,
    truncated to this format's 88 bits: the same hashes) in this format."""
    users = []
    for i, rel in enumerate(manifest["user_segments"]):
        name = f"users/openids-{tag}-r{i}.arrow"
        files.write_arrow(app_dir / name, files.read_arrow(verified(app_dir, manifest, rel)))
        users.append(name)

    def segment(rel: str) -> dedup.KeySet:
        path = verified(app_dir, manifest, rel)
        if rel.endswith(".parquet"):  # already this format's
            return dedup.KeySet.load(path)
        return dedup.KeySet.of(dedup.truncate(files.load_npy(path, mmap=False, ndim=2)))

    out = {"user_segments": users, "keys": []}
    if manifest["keys"]:
        out["keys"] = [f"keys/keys-{tag}-r.parquet"]
        dedup.KeySet.union(map(segment, manifest["keys"])).save(app_dir / out["keys"][0])
    return out


def _kind(name: str) -> str:
    """``raw/visits-v000012-m1.parquet`` -> ``visits``."""
    return name.split("/")[-1].split("-")[0]


def _rows(path: Path) -> int:
    """Rows of a segment, from its metadata (Parquet footer, Arrow file batches)."""
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with pa.memory_map(str(path)) as src:
        reader = pa.ipc.open_file(src)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def _read_parquet(path: Path) -> pa.Table:
    return pq.read_table(path)


def _concat(tables: list[pa.Table]) -> pa.Table:
    """Tables of one kind of segment, in order; a column typed differently across them (a
    dictionary here, plain strings or nulls there) is decoded to its value type first."""
    if all(t.schema == tables[0].schema for t in tables):
        return pa.concat_tables(tables)
    plain = []
    for t in tables:
        cols = [
            col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col
            for col in t.columns
        ]
        plain.append(pa.table(cols, names=t.column_names))
    return pa.concat_tables(plain, promote_options="permissive")


def _final_keys(
    keys: np.ndarray, batch: Batch, idx: np.ndarray, tentative: np.ndarray, uid: np.ndarray
) -> np.ndarray:
    """Content keys of new users were made with their tentative ids: make them final."""
    has_event = batch.event_id.is_valid().to_numpy(zero_copy_only=False)[idx]
    redo = ~has_event & (tentative != uid)
    if redo.any():
        keys[redo] = dedup.content_keys(batch.content[idx][redo], uid[redo])
    return keys


def _devices_changed(d: Path, old: dict, st: _AppState) -> bool:
    return len(orjson.loads((d / old["devices"]).read_bytes())) != len(st.device_names)


class WriterLock:
    """The store-wide write lock (an advisory ``flock``); blocks until free."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / "writer.lock"
        self._f = None

    def __enter__(self):
        try:
            self._f = open(self.path, "a+")  # noqa: SIM115 - closed in __exit__
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise StoreReadOnlyError(self.path.parent, "store records") from None
            raise
        fcntl.flock(self._f.fileno(), fcntl.LOCK_EX)
        self._f.seek(0)
        self._f.truncate()
        self._f.write(str(os.getpid()))
        self._f.flush()
        return self._f

    def __exit__(self, *exc):
        fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
        self._f.close()
