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

from weanalysis.errors import StoreError
from weanalysis.store import files
from weanalysis.store.summaries import VISIT_ATTRS

MANIFEST = "manifest.json"
# The layout of an app's files; a data folder written with another layout is refused (with a
# message) rather than misread. 2: person logs keep each user's last two entries packed.
FORMAT = 2


class StoreFormatError(StoreError):
    """The data folder was written by a weanalysis with another storage format."""


NO_FIRST_DAY = np.iinfo(np.int32).max


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


def read_manifest(app_dir: Path) -> dict:
    path = app_dir / MANIFEST
    try:
        manifest = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return empty_manifest()
    if manifest.get("format") != FORMAT:
        raise StoreFormatError(
            f"{app_dir} holds storage format {manifest.get('format')}, this weanalysis reads "
            f"format {FORMAT}: ingest the records again into a new data folder"
        )
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

    def day_numbers(self) -> list[int]:
        return sorted(int(d) for d in self.manifest["days"])

    @functools.cached_property
    def first_day(self) -> np.ndarray:
        name = self.manifest["first_day"]
        if name is None:
            return np.full(0, NO_FIRST_DAY, dtype=np.int32)
        return files.load_npy(self.dir / name)

    def day(self, day: int, with_times: bool = False) -> dict[str, np.ndarray] | None:
        name = self.manifest["days"].get(str(day))
        if name is None:
            return None
        d = self.dir / name
        cols = ["uid", *VISIT_ATTRS]
        if with_times:
            cols += [a + "_t" for a in VISIT_ATTRS]
        return {c: files.load_npy(d / f"{c}.npy") for c in cols}

    def person_log(self, name: str, full: bool = True) -> dict[str, np.ndarray] | None:
        sub = self.manifest["persons"].get(name)
        if sub is None:
            return None
        d = self.dir / sub
        cols = ["key", "val", "cur", "prev"] + (["t"] if full else [])
        return {c: files.load_npy(d / f"{c}.npy") for c in cols}

    @functools.cached_property
    def device_names(self) -> list[str | None]:
        name = self.manifest["devices"]
        if name is None:
            return [None]
        return [None, *orjson.loads((self.dir / name).read_bytes())]

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
            np.asfortranarray(files.load_npy(self.dir / k, mmap=False))
            for k in self.manifest["keys"]
        ]

    def raw_files(self) -> list[Path]:
        return [self.dir / r for r in self.manifest["raw"]]

    def openids(self) -> list[str]:
        out: list[str] = []
        for seg in self.manifest["user_segments"]:
            out.extend(files.read_arrow(self.dir / seg).column("openid").to_pylist())
        return out
