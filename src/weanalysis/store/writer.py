"""Write side of the store: one writer at a time (a file lock), copy-on-write commits.

A commit writes new immutable files (a raw Parquet segment with every accepted record, the
day summaries it touched, the person logs, key and user segments), fsyncs them, and then
replaces the app's manifest atomically. A crash at any point leaves the previous manifest in
force: nothing half-written is ever read, and nothing acknowledged is lost.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa

from weanalysis.dims import regions
from weanalysis.errors import StoreError, StoreReadOnlyError
from weanalysis.records.columns import Coded
from weanalysis.store import dedup, files
from weanalysis.store.catalog import App
from weanalysis.store.days import local_days
from weanalysis.store.integrity import SELF_KEY as SEAL
from weanalysis.store.snapshot import NO_FIRST_DAY, AppSnapshot, read_manifest, write_manifest
from weanalysis.store.summaries import (
    UNDATED_SLOT,
    day_slot,
    merge_day,
    merge_person,
)

TIME_ABSENT = np.iinfo(np.int64).min
# The manifest remembers the earliest day touched by each of its last commits, so that a reader
# holding a cached answer for a window ending on day e can tell whether it is still exact.
MAX_CHANGES = 1024
UNDATED_DAY = -1
# Key segments are merged into one when there are more than this many (LSM-style).
MAX_KEY_SEGMENTS = 8
# Files no longer named by the manifest are deleted this long after, so that a reader holding
# an older snapshot can finish its query.
GARBAGE_GRACE_S = 600


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


class _AppState:
    """What the writer keeps in memory between commits of one app."""

    def __init__(self, app_dir: Path, manifest: dict):
        self.manifest = manifest
        snap = AppSnapshot(app_dir, manifest)
        self.uid_of: dict[str, int] = {o: i for i, o in enumerate(snap.openids())}
        self.keys = snap.key_segments()
        names = snap.device_names[1:]
        self.device_names: list[str] = list(names)
        self.device_code: dict[str, int] = {n: i + 1 for i, n in enumerate(names)}


class Writer:
    """Holds the store's write lock; commits batches app by app."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._catalog: sqlite3.Connection | None = None  # to see that an app is still there
        self._states: dict[str, _AppState] = {}
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._io = ThreadPoolExecutor(max_workers=1)

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
        self._pool.shutdown()
        self._io.shutdown()

    def app_dir(self, appid: str) -> Path:
        return self.data_dir / "apps" / appid

    def _state(self, appid: str) -> _AppState:
        d = self.app_dir(appid)
        manifest = read_manifest(d)
        st = self._states.get(appid)
        if st is None or st.manifest.get(SEAL) != manifest.get(SEAL):  # another writer committed
            for sub in ("raw", "users", "days", "persons", "keys", "meta"):
                (d / sub).mkdir(parents=True, exist_ok=True)
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
            except BaseException:
                # In-memory state (user ids, devices, keys) may be ahead of the disk: reload.
                self._states.pop(app.appid, None)
                raise
            if app.retention_days is not None:
                from weanalysis.store import maintenance

                # records of days past the app's retention go at the commit after the day turns
                if maintenance.apply_retention_locked(self.data_dir, app) is not None:
                    self._states.pop(app.appid, None)
            return result

    def _registered(self, app: App) -> bool:
        if self._catalog is None:
            self._catalog = sqlite3.connect(
                self.data_dir / "catalog.sqlite", timeout=30, check_same_thread=False
            )
        row = self._catalog.execute(
            "SELECT 1 FROM apps WHERE appid = ? AND created_at = ?", (app.appid, app.created_at)
        ).fetchone()
        return row is not None

    def _commit(self, app: App, batch: Batch) -> CommitResult:
        d = self.app_dir(app.appid)
        st = self._state(app.appid)
        old = st.manifest
        version = old["version"] + 1
        tag = f"v{version:06d}"
        new = dict(old)
        new["version"] = version
        new["days"] = dict(old["days"])
        new["persons"] = dict(old["persons"])
        new["counts"] = dict(old["counts"])
        garbage: list[str] = []
        touched = {"raw"}  # sub-folders that get new entries in this commit

        # 1. Dense user ids (tentative for new users), then idempotency keys.
        uid_all, fresh = self._lookup_uids(st, batch.openid)
        keys = dedup.record_keys(batch.content, uid_all, batch.event_id, batch.events)
        # 2. Duplicates: within the batch, then against every stored key.
        keep = dedup.first_occurrences(keys)
        for seg in st.keys:
            keep &= ~dedup.contained(seg, keys)
        idx = np.flatnonzero(keep)
        result = CommitResult(accepted=len(idx), duplicates=len(batch) - len(idx), kept=keep)
        if len(idx) == 0:
            result.version = old["version"]
            return result
        take = pa.array(idx, type=pa.int64())
        openid = batch.openid.take(take)
        time_ms = batch.time_ms[idx]
        base = len(st.uid_of)
        uid, new_openids = self._assign_uids(st, uid_all[idx], fresh)
        keys = keys[idx]
        if new_openids:  # content keys of new users were made with tentative ids: make them final
            has_event = batch.event_id.is_valid().to_numpy(zero_copy_only=False)[idx]
            redo = ~has_event & (uid_all[idx] >= base)
            if redo.any():
                keys[redo] = dedup.content_keys(batch.content[idx][redo], uid[redo])
        num_users = len(st.uid_of)
        new["users"] = num_users
        if new_openids:
            seg = f"users/openids-{tag}.arrow"
            files.write_arrow(d / seg, pa.table({"openid": pa.array(new_openids, pa.string())}))
            new["user_segments"] = [*old["user_segments"], seg]
            touched.add("users")

        # 3. Storage order and days.
        seq = np.arange(old["next_seq"], old["next_seq"] + len(idx), dtype=np.int64)
        new["next_seq"] = int(seq[-1]) + 1
        dated = time_ms != TIME_ABSENT
        day = np.full(len(idx), -1, dtype=np.int32)
        # the manifest names the zone once the app's zone was changed (the catalog follows)
        tz = ZoneInfo(old["timezone"]) if old.get("timezone") else app.tz
        day[dated] = local_days(time_ms[dated], tz)

        raw = {
            "seq": seq,
            "uid": uid,
            "openid": openid,
            "time_ms": pa.array(time_ms, pa.int64(), mask=~dated),
            "day": pa.array(day, pa.int32(), mask=~dated),
            "gender": batch.gender[idx],
            "age": pa.array(batch.age[idx], pa.int16(), mask=batch.age[idx] < 0),
        }
        if batch.kind == "visit":
            loc = batch.location[idx]
            dev_names = batch.device.take(idx)
            dev = self._device_codes(st, dev_names)
            raw.update(
                province_id=regions.LOC_PROVINCE[loc],
                city_id=regions.LOC_CITY[loc],
                platform=batch.platform[idx],
                device=dev_names.arrow(),
            )
        raw["event_id"] = batch.event_id.take(take)
        for k, v in batch.raw.items():
            raw[k] = v.take(take)
        seg = f"raw/{batch.kind}s-{tag}.parquet"
        # the raw segment is compressed and written (Arrow, without the GIL) while the day
        # summaries merge; both are durable before the manifest names them
        parquet_job = self._io.submit(files.write_parquet, d / seg, pa.table(raw))
        if batch.kind == "visit":
            touched.update(("days", "meta"))
            self._update_visits(
                d, tag, st, new, garbage, uid, day, time_ms, loc, batch.platform[idx], dev
            )
        parquet_job.result()
        new["raw"] = [*old["raw"], seg]
        new["counts"][batch.kind + "s"] += len(idx)

        # 4. Person properties (gender, age bucket) from every record that knows them.
        slot = np.where(dated, day_slot(day.astype(np.int64)), UNDATED_SLOT)
        for name, values in (("gender", batch.gender[idx]), ("age", batch.age_bucket[idx])):
            known = values > 0
            if not known.any():  # nothing new about this property: the log stays as it is
                continue
            prev = AppSnapshot(d, old).person_log(name)
            log = merge_person(
                prev, uid[known], slot[known], time_ms[known], values[known], num_users
            )
            sub = f"persons/{name}-{tag}"
            self._write_dir(d / sub, log)
            touched.add("persons")
            if old["persons"][name]:
                garbage.append(old["persons"][name])
            new["persons"][name] = sub

        # 5. Keys of what was accepted: a new sorted segment; the newest segments are merged
        # while the last is at least half the size of the one before (sizes stay geometric, so
        # few segments to search and each key is rewritten only O(log n) times).
        st.keys.append(dedup.sort_keys(keys))
        keys_names = [*old["keys"], f"keys/keys-{tag}.npy"]
        files.write_npy(d / keys_names[-1], st.keys[-1])
        merges = 0
        while len(st.keys) > 1 and (
            2 * len(st.keys[-1]) >= len(st.keys[-2]) or len(st.keys) > MAX_KEY_SEGMENTS
        ):
            merged = dedup.sort_keys(np.concatenate([st.keys[-2], st.keys[-1]]))
            garbage.extend(keys_names[-2:])
            merges += 1
            name = f"keys/keys-{tag}-m{merges}.npy"
            files.write_npy(d / name, merged)
            st.keys[-2:] = [merged]
            keys_names[-2:] = [name]
        new["keys"] = keys_names
        touched.add("keys")

        # 6. Publish, noting the earliest day this commit can affect (an undated profile: all).
        earliest = int(day[dated].min()) if dated.any() else UNDATED_DAY
        if not dated.all():
            earliest = UNDATED_DAY
        new["changes"] = [*old.get("changes", []), [version, earliest]][-MAX_CHANGES:]
        now = time.time()
        new["garbage"] = [g for g in old.get("garbage", []) if now - g[1] < GARBAGE_GRACE_S] + [
            [g, now] for g in garbage
        ]
        for g, t in old.get("garbage", []):
            if now - t >= GARBAGE_GRACE_S:
                _remove(d / g)
        for sub in sorted(touched):  # new directory entries must be durable before the manifest
            files.fsync_dir(d / sub)
        st.manifest = new = write_manifest(d, new)
        result.version = version
        return result

    # -- pieces of a commit -------------------------------------------------------------------

    def _lookup_uids(self, st: _AppState, openid: pa.Array) -> tuple[np.ndarray, list[str]]:
        """uid per row; openids not seen before get tentative ids from ``len(uid_of)`` on."""
        enc = openid.dictionary_encode()
        distinct = enc.dictionary.to_pylist()
        codes = np.empty(len(distinct), dtype=np.int64)
        fresh: list[str] = []
        base = len(st.uid_of)
        get = st.uid_of.get
        for i, o in enumerate(distinct):
            u = get(o)
            if u is None:
                u = base + len(fresh)
                fresh.append(o)
            codes[i] = u
        return codes[enc.indices.to_numpy(zero_copy_only=False)], fresh

    def _assign_uids(
        self, st: _AppState, uid: np.ndarray, fresh: list[str]
    ) -> tuple[np.ndarray, list[str]]:
        """Make tentative ids final: only new users with an accepted record get an id."""
        base = len(st.uid_of)
        if not fresh:
            return uid.astype(np.uint32), []
        used = np.unique(uid[uid >= base])
        final = np.arange(base, base + len(used), dtype=np.int64)
        remap = np.full(len(fresh), -1, dtype=np.int64)
        remap[used - base] = final
        out = uid.copy()
        is_new = out >= base
        out[is_new] = remap[out[is_new] - base]
        new_openids = [fresh[i] for i in (used - base).tolist()]
        for i, o in enumerate(new_openids):
            st.uid_of[o] = base + i
        return out.astype(np.uint32), new_openids

    def _device_codes(self, st: _AppState, names: Coded) -> np.ndarray:
        table = np.zeros(len(names.values) + 1, dtype=np.int32)
        for i, name in enumerate(names.values):
            if name is None:
                continue
            c = st.device_code.get(name)
            if c is None:
                st.device_names.append(name)
                c = st.device_code[name] = len(st.device_names)
            table[i] = c
        return table[names.idx]

    def _update_visits(self, d, tag, st, new, garbage, uid, day, time_ms, loc, plat, dev) -> None:
        old = st.manifest
        # first visit day per user
        first = np.full(new["users"], NO_FIRST_DAY, dtype=np.int32)
        if old["first_day"]:
            prev = files.load_npy(AppSnapshot(d, old).path(old["first_day"]), mmap=False)
            first[: len(prev)] = prev
            garbage.append(old["first_day"])
        np.minimum.at(first, uid, day)
        new["first_day"] = f"meta/first_day-{tag}.npy"
        files.write_npy(d / new["first_day"], first)
        # day summaries of every touched day, in parallel (numpy sorts release the GIL)
        order = np.argsort(day, kind="stable")
        days_sorted = day[order]
        bounds = np.flatnonzero(np.diff(days_sorted)) + 1
        groups = np.split(order, bounds)
        snap = AppSnapshot(d, old)

        def one(rows: np.ndarray) -> tuple[str, str, str | None]:
            dn = int(day[rows[0]])
            prev = snap.day(dn, with_times=True)
            prev = {k: np.asarray(v) for k, v in prev.items()} if prev is not None else None
            merged = merge_day(
                prev,
                uid[rows],
                time_ms[rows],
                {"loc": loc[rows], "plat": plat[rows], "dev": dev[rows]},
            )
            sub = f"days/{dn}-{tag}"
            self._write_dir(d / sub, merged)
            return str(dn), sub, old["days"].get(str(dn))

        for dn, sub, prev_sub in self._pool.map(one, groups):
            new["days"][dn] = sub
            if prev_sub:
                garbage.append(prev_sub)
        if len(st.device_names) and (old["devices"] is None or _devices_changed(d, old, st)):
            name = f"meta/devices-{tag}.json"
            files.atomic_write_bytes(d / name, orjson.dumps(st.device_names))
            if old["devices"]:
                garbage.append(old["devices"])
            new["devices"] = name

    @staticmethod
    def _write_dir(path: Path, arrays: dict[str, np.ndarray]) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for k, v in arrays.items():
            files.write_npy(path / f"{k}.npy", v)
        files.fsync_dir(path)


def _devices_changed(d: Path, old: dict, st: _AppState) -> bool:
    return len(orjson.loads(AppSnapshot(d, old).path(old["devices"]).read_bytes())) != len(
        st.device_names
    )


def _remove(path: Path) -> None:
    try:
        if path.is_dir():
            for p in path.iterdir():
                p.unlink()
            path.rmdir()
        else:
            path.unlink()
    except FileNotFoundError:
        pass


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
