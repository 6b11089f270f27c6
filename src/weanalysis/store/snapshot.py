"""Read side of an app's store: an immutable snapshot named by one manifest.

Readers never lock: they read ``manifest.json`` (replaced atomically by the writer) and the
immutable files it names, memory-mapped. A writer in another process can commit meanwhile; the
snapshot stays consistent, and :meth:`AppSnapshot.is_current` tells when a newer one exists.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import orjson

from weanalysis.errors import InputError, StoreDamagedError, StoreError
from weanalysis.store import files
from weanalysis.store.integrity import (
    VERIFIED,
    DamagedFileError,
    manifest_checksums,
    manifest_ok,
    seal,
)
from weanalysis.store.summaries import ATTR_DTYPES, VISIT_ATTRS

MANIFEST = "manifest.json"
# The layout of an app's files; a data folder written with another layout is refused (with a
# message) rather than misread. 2: person logs keep each user's last two entries packed.
FORMAT = 2


class StoreFormatError(StoreError):
    """The data folder was written by a weanalysis with another storage format."""


NO_FIRST_DAY = np.iinfo(np.int32).max


class WindowBeforeRetention(InputError):
    """A portrait window begins before the app's retained range (records deleted)."""


def retained_from(manifest: dict) -> int | None:
    """The first day whose records are all kept, once retention deleted earlier ones."""
    kept = manifest.get("retained")
    return kept["from_day"] if kept else None


def empty_manifest() -> dict:
    return {
        "format": FORMAT,
        "version": 0,
        "next_seq": 0,
        "users": 0,
        "user_segments": [],
        "first_day": None,
        "days": {},
        "persons": {"gender": None, "age": None},
        "keys": [],
        "devices": None,
        "raw": [],
        "counts": {"visits": 0, "profiles": 0},
        "garbage": [],
        "changes": [],
    }


# the manifest's fields a reader relies on, and their types (None: may be null)
MANIFEST_FIELDS: dict[str, tuple[type, ...]] = {
    "version": (int,),
    "users": (int,),
    "user_segments": (list,),
    "first_day": (str, type(None)),
    "days": (dict,),
    "persons": (dict,),
    "keys": (list,),
    "devices": (str, type(None)),
    "raw": (list,),
    "counts": (dict,),
}


def _relative_name(name: object) -> bool:
    """A file name inside the app's folder (no absolute path, no way up)."""
    return isinstance(name, str) and bool(name) and not name.startswith("/") and ".." not in name


def check_manifest(path: Path, m: object) -> dict:
    """The manifest if it has the shape readers rely on; else a StoreDamagedError naming it."""
    if not isinstance(m, dict):
        raise StoreDamagedError(path, "not a JSON object")
    for key, types in MANIFEST_FIELDS.items():
        if not isinstance(m.get(key), types) or isinstance(m.get(key), bool):
            raise StoreDamagedError(path, f"field {key!r} is missing or of the wrong type")
    if m["users"] < 0 or m["version"] < 0:
        raise StoreDamagedError(path, "negative counts")
    names = [*m["user_segments"], *m["keys"], *m["raw"], *m["days"].values()]
    names += [v for v in (m["first_day"], m["devices"], *m["persons"].values()) if v is not None]
    if not all(_relative_name(n) for n in names):
        raise StoreDamagedError(path, "names a file outside the app's folder, or not a name")
    try:
        [int(d) for d in m["days"]]
    except ValueError:
        raise StoreDamagedError(path, "a day that is not a number") from None
    return m


def read_manifest(app_dir: Path) -> dict:
    path = app_dir / MANIFEST
    try:
        manifest = orjson.loads(path.read_bytes())
    except FileNotFoundError:  # no commit yet (the first one writes its files, then this)
        return empty_manifest()
    except orjson.JSONDecodeError as e:
        raise StoreDamagedError(path, f"not JSON ({e})") from None
    except OSError as e:
        raise StoreDamagedError(path, f"cannot be read ({e.strerror})") from None
    if isinstance(manifest, dict) and manifest.get("format") != FORMAT:
        raise StoreFormatError(
            f"{app_dir} holds storage format {manifest.get('format')}, this weanalysis reads "
            f"format {FORMAT}: ingest the records again into a new data folder"
        )
    if isinstance(manifest, dict) and not manifest_ok(manifest):
        raise DamagedFileError(path, "does not match its own checksum")
    return check_manifest(path, manifest)


def write_manifest(app_dir: Path, manifest: dict) -> dict:
    """Publish a new state of the app: the checksum of every file it names, its own checksum,
    then the atomic replace (the commit point). Returns the manifest as written."""
    manifest = dict(manifest)
    manifest["checksums"] = manifest_checksums(app_dir, manifest)
    manifest = seal(manifest)
    files.write_json(app_dir / MANIFEST, manifest)
    return manifest


class AppSnapshot:
    def __init__(self, app_dir: Path, manifest: dict | None = None):
        self.dir = app_dir
        self.manifest = read_manifest(app_dir) if manifest is None else manifest
        self._stat = self._manifest_stat()

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

    def check_window(self, begin_day: int) -> None:
        """Refuses a window that begins before the retained range: never a smaller answer."""
        first = retained_from(self.manifest)
        if first is not None and begin_day < first:
            from weanalysis.store.days import day_date

            raise WindowBeforeRetention(
                f"records before {day_date(first).isoformat()} were deleted by the app's "
                "retention policy: choose a window that begins on or after that day"
            )

    def day_numbers(self) -> list[int]:
        return sorted(int(d) for d in self.manifest["days"])

    @functools.cached_property
    def first_day(self) -> np.ndarray:
        name = self.manifest["first_day"]
        if name is None:
            return np.full(0, NO_FIRST_DAY, dtype=np.int32)
        arr = files.load_npy(self.path(name))
        if len(arr) > self.num_users or arr.dtype != np.int32:
            raise StoreDamagedError(
                self.dir / name, f"{len(arr)} {arr.dtype} values for {self.num_users} users"
            )
        return arr

    def path(self, rel: str) -> Path:
        """The path of a file this snapshot names, verified against its checksum (once per
        process and state of the file); raises :class:`DamagedFileError`."""
        sums = self.manifest.get("checksums")
        VERIFIED.check(self.dir / rel, None if sums is None else sums.get(rel))
        return self.dir / rel

    def day(self, day: int, with_times: bool = False) -> dict[str, np.ndarray] | None:
        name = self.manifest["days"].get(str(day))
        if name is None:
            return None
        cols = ["uid", *VISIT_ATTRS]
        if with_times:
            cols += [a + "_t" for a in VISIT_ATTRS]
        d = self.dir / name
        out = {c: files.load_npy(self.path(f"{name}/{c}.npy")) for c in cols}
        uid = out["uid"]
        if uid.dtype != np.uint32 or (len(uid) and int(uid[-1]) >= self.num_users):
            raise StoreDamagedError(d / "uid.npy", f"user ids beyond the {self.num_users} users")
        for c, arr in out.items():
            expected = np.int64 if c.endswith("_t") else ATTR_DTYPES.get(c, np.uint32)
            if len(arr) != len(uid) or arr.dtype != expected:
                raise StoreDamagedError(
                    d / f"{c}.npy", f"{len(arr)} {arr.dtype} values for {len(uid)} users"
                )
        return out

    def person_log(self, name: str, full: bool = True) -> dict[str, np.ndarray] | None:
        sub = self.manifest["persons"].get(name)
        if sub is None:
            return None
        cols = ["key", "val", "cur", "prev"] + (["t"] if full else [])
        d = self.dir / sub
        out = {c: files.load_npy(self.path(f"{sub}/{c}.npy")) for c in cols}
        for c in ("cur", "prev"):
            if len(out[c]) > self.num_users:
                raise StoreDamagedError(
                    d / f"{c}.npy", f"more entries than the {self.num_users} users"
                )
        for c in ("val", "t"):
            if c in out and len(out[c]) != len(out["key"]):
                raise StoreDamagedError(d / f"{c}.npy", "not as long as key.npy")
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

    def key_segments(self) -> list[np.ndarray]:
        # column-major: lane 0 contiguous for binary searches (older files: converted once)
        return [
            np.asfortranarray(files.load_npy(self.path(k), mmap=False, ndim=2))
            for k in self.manifest["keys"]
        ]

    def raw_files(self) -> list[Path]:
        return [self.path(r) for r in self.manifest["raw"]]

    def openids(self) -> list[str]:
        out: list[str] = []
        for seg in self.manifest["user_segments"]:
            out.extend(files.read_arrow(self.path(seg)).column("openid").to_pylist())
        return out
