"""Read side of an app's store: an immutable snapshot named by one manifest.

Readers never lock: they read ``manifest.json`` (replaced atomically by the writer) and the
immutable files it names, memory-mapped. A writer in another process can commit meanwhile; the
snapshot stays consistent, and :meth:`AppSnapshot.is_current` tells when a newer one exists.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import orjson

from weanalysis.errors import StoreDamagedError, StoreError
from weanalysis.store import dedup, files
from weanalysis.store.integrity import (
    VERIFIED,
    DamagedFileError,
    manifest_checksums,
    manifest_ok,
    seal,
)
from weanalysis.store.leases import Lease
from weanalysis.store.summaries import (
    BASE_COLUMNS,
    LOG_COLUMNS,
    VISIT_ATTRS,
    merge_summaries,
    pack,
    partial_rows,
    read_times,
    unpack,
)
from weanalysis.store.view import VIEW_ARRAYS, VIEW_DAYS, counts_shape_ok, split_counts

MANIFEST = "manifest.json"
# The layout of an app's files; a data folder written with another layout is refused (with a
# message) rather than misread. 2: person logs keep each user's last two entries packed.
# 3: day summaries, person logs and first days are lists of runs (a base and small recent
# runs, merged geometrically), day times are int32 offsets from the day's start.
# 4: raw segments without openids (the user segments map uid -> openid) and with per-column
# encodings, 88-bit idempotency keys in Parquet, day times compressed apart, person logs' base
# runs by user with int32 times, compressed user segments (about half the bytes of format 3).
FORMAT = 4
# Formats `weanalysis rebuild` migrates from: their raw segments, user segments and keys are
# rewritten in this format, everything else is derived again.
REBUILDABLE = (2, 3)


class StoreFormatError(StoreError):
    """The data folder was written by a weanalysis with another storage format."""


NO_FIRST_DAY = np.iinfo(np.int32).max
COLUMNS_READ = ("uid", "packed", "partial")  # what a query reads of a day run


def empty_manifest() -> dict:
    return {
        "format": FORMAT,
        "version": 0,
        "next_seq": 0,
        "users": 0,
        "user_segments": [],
        "first_day": [],
        "days": {},
        "persons": {"gender": [], "age": []},
        "keys": [],
        "devices": None,
        "raw": [],
        "counts": {"visits": 0, "profiles": 0},
        "garbage": [],
        "changes": [],
    }


def _relative_name(name: object) -> bool:
    """A file name inside the app's folder (no absolute path, no way up)."""
    return isinstance(name, str) and bool(name) and not name.startswith("/") and ".." not in name


def _runs(value: object) -> bool:
    """A list of runs: ``[[name, rows], ...]``."""
    return isinstance(value, list) and all(
        isinstance(r, list) and len(r) == 2 and isinstance(r[1], int) for r in value
    )


# the manifest's fields a reader relies on, and their types (None: may be null)
MANIFEST_FIELDS: dict[str, tuple[type, ...]] = {
    "version": (int,),
    "users": (int,),
    "user_segments": (list,),
    "first_day": (list,),
    "days": (dict,),
    "persons": (dict,),
    "keys": (list,),
    "devices": (str, type(None)),
    "raw": (list,),
    "counts": (dict,),
}


def check_manifest(path: Path, m: object) -> dict:
    """The manifest if it has the shape readers rely on; else a StoreDamagedError naming it."""
    if not isinstance(m, dict):
        raise StoreDamagedError(path, "not a JSON object")
    for key, types in MANIFEST_FIELDS.items():
        if not isinstance(m.get(key), types) or isinstance(m.get(key), bool):
            raise StoreDamagedError(path, f"field {key!r} is missing or of the wrong type")
    if m["users"] < 0 or m["version"] < 0:
        raise StoreDamagedError(path, "negative counts")
    runs = [m["first_day"], *m["days"].values(), *(v or [] for v in m["persons"].values())]
    if not all(_runs(r) for r in runs):
        raise StoreDamagedError(path, "a list of runs that is not [[name, rows], ...]")
    try:
        [int(d) for d in m["days"]]
    except ValueError:
        raise StoreDamagedError(path, "a day that is not a number") from None
    kept = m.get("retained")
    if kept is not None and not (
        isinstance(kept, dict)
        and isinstance(kept.get("from_day"), int)
        and isinstance(kept.get("dir"), str)
    ):
        raise StoreDamagedError(path, "field 'retained' is not {from_day, dir}")
    if not all(_relative_name(n) for n in named_files(m)):
        raise StoreDamagedError(path, "names a file outside the app's folder, or not a name")
    return m


# the app folder's sub-folders that hold stored files
SUBFOLDERS = ("raw", "users", "days", "persons", "keys", "meta")


def stored_files(app_dir: Path) -> int:
    """How many entries the app's stored-file sub-folders hold."""
    n = 0
    for sub in SUBFOLDERS:
        try:
            n += len(os.listdir(app_dir / sub))
        except (FileNotFoundError, NotADirectoryError):
            pass
    return n


def read_manifest(app_dir: Path, any_format: bool = False) -> dict:
    path = app_dir / MANIFEST
    try:
        manifest = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        # no commit yet; a writer publishes an empty manifest before its first commit writes a
        # file, so stored files without a manifest mean the manifest was lost: never read that
        # as an empty app (and never let a writer take those files for orphans)
        stored = stored_files(app_dir)
        if stored:
            raise StoreDamagedError(
                path,
                f"is missing, but the app's folder holds {stored} stored files (a lost "
                "manifest, not an empty app: the files are left untouched)",
            ) from None
        return empty_manifest()
    except orjson.JSONDecodeError as e:
        raise StoreDamagedError(path, f"not JSON ({e})") from None
    except OSError as e:
        raise StoreDamagedError(path, f"cannot be read ({e.strerror})") from None
    if not isinstance(manifest, dict):
        raise StoreDamagedError(path, "not a JSON object")
    fmt = manifest.get("format")
    if fmt != FORMAT:
        if any_format and fmt in REBUILDABLE:
            return manifest  # rebuild reads its raw records and users only
        how = (
            f"run `weanalysis rebuild --appid {app_dir.name}` to convert it"
            if fmt in REBUILDABLE
            else "ingest the records again into a new data folder"
        )
        raise StoreFormatError(
            f"{app_dir} holds storage format {fmt}, this weanalysis reads format {FORMAT}: {how}"
        )
    if not manifest_ok(manifest):
        raise DamagedFileError(path, "does not match its own checksum")
    return check_manifest(path, manifest)


def write_manifest(app_dir: Path, manifest: dict, known: dict | None = None) -> dict:
    """Publish a new state of the app: the checksum of every file it names (``known``: the
    checksums of files it keeps, when the manifest does not carry them), its own checksum,
    then the atomic replace (the commit point). Returns the manifest as written."""
    manifest = dict(manifest)
    manifest["checksums"] = manifest_checksums(app_dir, manifest, known)
    # what this commit wrote and no longer names (runs merged away in it): not kept forever
    # (only the write lock's holder writes into an app's folder)
    files.WRITTEN.drop_under(app_dir)
    manifest = seal(manifest)
    files.write_json(app_dir / MANIFEST, manifest)
    files.WRITTEN.pop(app_dir / MANIFEST)  # it carries its own
    return manifest


def run_names(runs: list) -> list[str]:
    return [r[0] for r in runs]


def named_files(manifest: dict) -> list[str]:
    """Every file or folder (relative to the app's folder) a manifest names."""
    m = manifest
    names = [*m["raw"], *m["user_segments"], *m["keys"]]
    names += [n for runs in m["days"].values() for n in run_names(runs)]
    names += run_names(m["first_day"])
    names += [n for runs in m["persons"].values() for n in run_names(runs)]
    if m["devices"]:
        names.append(m["devices"])
    if m.get("view"):
        names.append(m["view"]["dir"])
    names += [name for name, _ in (m.get("day_counts") or {}).values()]
    if m.get("retained"):  # what retention kept of deleted records (store.retention)
        names.append(m["retained"]["dir"])
    return names


class AppSnapshot:
    def __init__(self, app_dir: Path, manifest: dict | None = None):
        """A consistent view of an app. Without ``manifest``, the current one is read and a
        lease on its version is held (see :mod:`weanalysis.store.leases`) until
        :meth:`close` or until the snapshot is collected, so no file it names is deleted."""
        self.dir = app_dir
        self._lease: Lease | None = None
        if manifest is None:
            manifest = read_manifest(app_dir)
            for _ in range(50):
                if manifest["version"] == 0:
                    break
                lease = Lease(app_dir, manifest["version"])
                again = read_manifest(app_dir)
                if again["version"] == manifest["version"]:
                    self._lease = lease
                    break
                lease.release()  # a commit landed between the read and the lease: again
                manifest = again
        self.manifest = manifest
        self._stat = self._manifest_stat()

    def close(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def _manifest_stat(self) -> tuple[int, int] | None:
        try:
            st = (self.dir / MANIFEST).stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def is_current(self) -> bool:
        return self._manifest_stat() == self._stat

    @property
    def version(self) -> int:
        return self.manifest["version"]

    @property
    def num_users(self) -> int:
        return self.manifest["users"]

    def record_count(self, kind: str) -> int:
        """Records of ``kind`` ("visit" or "profile") stored."""
        return int(self.manifest["counts"][kind + "s"])

    def day_numbers(self) -> list[int]:
        return sorted(int(d) for d in self.manifest["days"])

    @functools.cached_property
    def first_day(self) -> np.ndarray:
        """The first visit day of each user (``NO_FIRST_DAY``: none), folded from its runs."""
        runs = self.manifest["first_day"]
        if not runs:
            return np.full(0, NO_FIRST_DAY, dtype=np.int32)
        base = files.load_npy(self.path(runs[0][0]))
        if len(base) > self.num_users or base.dtype != np.int32:
            raise StoreDamagedError(
                self.dir / runs[0][0], f"{len(base)} {base.dtype} values for {self.num_users} users"
            )
        if len(runs) == 1:
            return base
        out = np.full(max(self.num_users, len(base)), NO_FIRST_DAY, dtype=np.int32)
        out[: len(base)] = base
        for name, _ in runs[1:]:
            pairs = files.load_npy(self.path(name), ndim=2)  # one pair per user
            if pairs.shape[1] != 2 or (len(pairs) and int(pairs[:, 0].max()) >= len(out)):
                raise StoreDamagedError(self.dir / name, "not (user, day) pairs of known users")
            u = pairs[:, 0]
            out[u] = np.minimum(out[u], pairs[:, 1])
        return out

    def path(self, rel: str) -> Path:
        """The path of a file this snapshot names, verified against its checksum (once per
        process and state of the file); raises :class:`DamagedFileError`."""
        sums = self.manifest.get("checksums")
        VERIFIED.check(self.dir / rel, None if sums is None else sums.get(rel))
        return self.dir / rel

    def day_runs(self, day: int, with_times: bool = False) -> list[dict[str, np.ndarray]]:
        """The runs of a day's summary, oldest first (each sorted by uid), with ``packed``
        (see :func:`weanalysis.store.summaries.pack`) and, ``with_times``, each column
        unpacked with its time."""
        out = []
        for name, _ in self.manifest["days"].get(str(day), []):
            d = self.dir / name
            run = {c: files.load_npy(self.path(f"{name}/{c}.npy")) for c in ("uid", "packed")}
            self._check_day(d, run["uid"], run["packed"])
            if with_times:
                times = read_times(self.path(f"{name}/times.parquet"), len(run["uid"]))
                for i, a in enumerate(VISIT_ATTRS):
                    run[a] = unpack(np.asarray(run["packed"]), a)
                    run[a + "_t"] = np.ascontiguousarray(times[:, i])
            out.append(run)
        return out

    def day_packed(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A day's summary as what the query scatters: sorted uids, packed visit columns, and
        the positions of rows with an unknown column."""
        runs = self.manifest["days"].get(str(day), [])
        if len(runs) == 1:
            d = self.dir / runs[0][0]
            uid, packed, partial = (
                files.load_npy(self.path(f"{runs[0][0]}/{c}.npy")) for c in COLUMNS_READ
            )
            self._check_day(d, uid, packed)
            if len(partial) and int(partial.max()) >= len(uid):
                raise StoreDamagedError(d / "partial.npy", "positions beyond the day's users")
            return uid, packed, partial
        s = self.day(day)
        if s is None:
            return np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(0, np.int32)
        return s["uid"], s["packed"], partial_rows(s)

    def _check_day(self, d: Path, uid: np.ndarray, packed: np.ndarray) -> None:
        if uid.dtype != np.uint32 or (len(uid) and int(uid[-1]) >= self.num_users):
            raise StoreDamagedError(d / "uid.npy", f"user ids beyond the {self.num_users} users")
        if len(packed) != len(uid) or packed.dtype not in (np.int32, np.int64):
            raise StoreDamagedError(
                d / "packed.npy", f"{len(packed)} {packed.dtype} values for {len(uid)} users"
            )

    def day(self, day: int, with_times: bool = False) -> dict[str, np.ndarray] | None:
        """A day's summary: ``uid`` (sorted), each visit column's latest known value, and
        ``packed``."""
        if str(day) not in self.manifest["days"]:
            return None
        several = len(self.manifest["days"][str(day)]) > 1
        runs = self.day_runs(day, with_times=True)
        out = runs[0]
        if several:  # the recent runs are small: fold them first, then one pass over the base
            recent = runs[1]
            for r in runs[2:]:
                recent = merge_summaries(recent, r)
            out = merge_summaries(runs[0], recent)
            out["packed"] = pack(out)
        if not with_times:
            out = {k: v for k, v in out.items() if not k.endswith("_t")}
        return out

    def counts_valid(self, day: int) -> bool:
        """Whether the day's stored aggregate (its 1-day answer) is still exact."""
        entry = (self.manifest.get("day_counts") or {}).get(str(day))
        return entry is not None and self.unchanged_up_to(entry[1], day)

    def day_counts(self, day: int) -> tuple[int, int, dict, dict] | None:
        """The 1-day answer of ``day`` as counts (see :func:`weanalysis.store.view.day_counts`)
        while it is exact, else None."""
        if not self.counts_valid(day):
            return None
        name = self.manifest["day_counts"][str(day)][0]
        arr = files.load_npy(self.path(name))
        if arr.dtype != np.int64 or not counts_shape_ok(len(arr)):
            raise StoreDamagedError(self.dir / name, "not the counts of a day")
        return split_counts(arr, len(self.device_names))

    def view(self, begin: int, end: int) -> dict[str, np.ndarray] | None:
        """The recent-window view's arrays when it answers ``[begin, end]`` exactly (see
        :mod:`weanalysis.store.view`), else None."""
        v = self.manifest.get("view")
        if v is None or end != v["day"] or begin < v["day"] - VIEW_DAYS + 1:
            return None
        if not self.unchanged_up_to(v["version"], end):
            return None
        d = self.dir / v["dir"]
        arrays = {n: files.load_npy(self.path(f"{v['dir']}/{n}.npy")) for n in VIEW_ARRAYS}
        n = len(arrays["uid"])
        for name, arr in arrays.items():
            if len(arr) != n:
                raise StoreDamagedError(d / f"{name}.npy", f"{len(arr)} values for {n} users")
        if arrays["uid"].dtype != np.uint32 or (n and int(arrays["uid"].max()) >= self.num_users):
            raise StoreDamagedError(d / "uid.npy", f"user ids beyond the {self.num_users} users")
        return arrays

    def person_runs(self, name: str) -> list[dict[str, np.ndarray]]:
        """A person log's runs, oldest first: the first a base run (by user, see
        :func:`weanalysis.store.summaries.base_run`), the others log runs (by key)."""
        runs = self.manifest["persons"].get(name) or []
        out = []
        for i, (sub, _) in enumerate(runs):
            cols = BASE_COLUMNS if i == 0 else LOG_COLUMNS
            run = {c: files.load_npy(self.path(f"{sub}/{c}.npy")) for c in cols}
            d = self.dir / sub
            if i == 0:
                if len(run["cur"]) > self.num_users or len(run["off"]) != len(run["cur"]) + 1:
                    raise StoreDamagedError(
                        d / "cur.npy", f"not one entry per user of the {self.num_users} users"
                    )
                entries = len(run["slot"])
                if len(run["off"]) and (int(run["off"][-1]) != entries or int(run["off"][0])):
                    raise StoreDamagedError(d / "off.npy", "offsets that do not span the entries")
            else:
                entries = len(run["key"])
            for c in ("val", "t"):
                if len(run[c]) != entries:
                    raise StoreDamagedError(d / f"{c}.npy", "not one value per entry")
            out.append(run)
        return out

    @functools.cached_property
    def device_names(self) -> list[str | None]:
        name = self.manifest["devices"]
        if name is None:
            return [None]
        names = files.load_json(self.path(name))
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise StoreDamagedError(self.dir / name, "not a list of device names")
        return [None, *names]

    def unchanged_up_to(self, since_version: int, end_day: int) -> bool:
        """True when no commit after ``since_version`` touched a day <= ``end_day``.

        An answer for a window ending on ``end_day`` depends only on records of days up to it
        (SPEC.md 3), so a cached answer made at ``since_version`` is still exact.
        """
        if since_version == self.version:
            return True
        changes = self.manifest.get("changes", [])
        if not changes or changes[0][0] > since_version + 1:
            return False  # the log does not reach back that far
        return all(day > end_day for v, day in changes if v > since_version)

    def key_segments(self) -> list[dedup.KeySet]:
        """The idempotency key segments, each a sorted :class:`~weanalysis.store.dedup.KeySet`."""
        return [dedup.KeySet.load(self.path(k)) for k in self.manifest["keys"]]

    def raw_files(self) -> list[Path]:
        return [self.path(r) for r in self.manifest["raw"]]

    def live_files(self) -> list[Path]:
        """Every file this snapshot names (the folders of runs expanded)."""
        out: list[Path] = []
        for n in named_files(self.manifest):
            p = self.dir / n
            out.extend(sorted(p.iterdir()) if p.is_dir() else [p])
        return out

    def openids(self) -> list[str | None]:
        out: list[str | None] = []
        for seg in self.manifest["user_segments"]:
            out.extend(files.read_arrow(self.path(seg)).column("openid").to_pylist())
        return out
