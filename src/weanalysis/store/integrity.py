"""Checksums of stored files: recorded in the manifest, verified on read and by ``check``.

The manifest records ``checksums: {relative path: checksum}`` for every file it names
(:func:`weanalysis.store.snapshot.named_files`: raw and user segments, keys, every run of the
day summaries, first days and person logs, device names, the recent-window view and the
per-day counts; a folder stands for the files in it).
The manifest itself carries ``manifest_checksum``, computed over its canonical JSON without
that key.

Reads verify each file once per process and state of the file (path, inode, size, mtime): the
first read of a file costs one CRC-32 pass (~3 GB/s), later reads one ``stat``. A file changed in
place (a flipped byte written by anything) gets a new mtime and is verified again.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import orjson

from weanalysis.errors import StoreDamagedError
from weanalysis.store import files

log = logging.getLogger("weanalysis.store")

SELF_KEY = "manifest_checksum"


class DamagedFileError(StoreDamagedError):
    """A stored file does not match its checksum, or is missing: restore it from a backup."""

    def __init__(self, path: Path, detail: str):
        super().__init__(path, detail)
        self.args = (
            f"damaged data folder: damaged file {path}: {detail} (run weanalysis check to list "
            "every damaged file; restore the data folder from a backup)",
        )
        self.detail = detail


def file_checksum(path: Path) -> str:
    """The checksum of a file on disk (memory-mapped: no copy)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return files.checksum(b"")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return f"crc32:{zlib.crc32(mm):08x}"


def named_files(app_dir: Path, manifest: dict) -> list[str]:
    """Relative paths of every file the manifest names (the folders of runs, the view and
    retained data expanded into their files), sorted."""
    from weanalysis.store.snapshot import named_files as names_of

    out: set[str] = set()
    for s in names_of(manifest):
        p = app_dir / s
        if p.is_dir():
            out.update(f"{s}/{c.name}" for c in p.iterdir() if not c.name.startswith("."))
        else:
            out.add(s)  # a missing file is named too: check reports it
    return sorted(out)


def manifest_checksums(app_dir: Path, manifest: dict, known: dict | None = None) -> dict[str, str]:
    """``path -> checksum`` for the files ``manifest`` names: new ones taken from what this
    process wrote (no read back), known ones (``known``, else the manifest's) kept, anything
    else read once (folders written before checksums were recorded)."""
    if known is None:
        known = manifest.get("checksums") or {}
    out = {}
    for rel in named_files(app_dir, manifest):
        digest = files.WRITTEN.pop(app_dir / rel) or known.get(rel)
        out[rel] = digest or file_checksum(app_dir / rel)
    return out


def seal(manifest: dict) -> dict:
    """The manifest with its own checksum (over its canonical JSON without that key)."""
    body = {k: v for k, v in manifest.items() if k != SELF_KEY}
    body[SELF_KEY] = files.checksum(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return body


def manifest_ok(manifest: dict) -> bool:
    """True when the manifest matches its own checksum (or carries none: older folders)."""
    want = manifest.get(SELF_KEY)
    if want is None:
        return True
    body = {k: v for k, v in manifest.items() if k != SELF_KEY}
    return files.checksum(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)) == want


class _Verified:
    """Files verified by this process, by (path, inode, size, mtime)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ok: set[tuple[str, int, int, int, str]] = set()

    def check(self, path: Path, want: str | None) -> None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            log.error("damaged file %s: missing", path)
            raise DamagedFileError(path, "missing") from None
        if want is None:  # written before checksums were recorded: nothing to compare
            return
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, want)
        if key in self._ok:
            return
        got = file_checksum(path)
        if got != want:
            log.error("damaged file %s: checksum %s, expected %s", path, got, want)
            raise DamagedFileError(path, f"checksum {got}, expected {want}")
        with self._lock:
            if len(self._ok) > 200_000:
                self._ok.clear()
            self._ok.add(key)


VERIFIED = _Verified()


@dataclass
class Problem:
    path: str  # relative to the data folder
    detail: str


def check_app(app_dir: Path, manifest: dict, rel_to: Path) -> tuple[int, list[Problem]]:
    """Verify every file the manifest names, reading each in full (no cache).

    Returns (files checked, problems); ``rel_to`` is the folder paths are reported against.
    """
    problems: list[Problem] = []
    sums = manifest.get("checksums")
    where = app_dir.relative_to(rel_to) if app_dir.is_relative_to(rel_to) else app_dir
    if not manifest_ok(manifest):
        problems.append(Problem(f"{where}/manifest.json", "does not match its own checksum"))
    if sums is None:
        if manifest.get("version", 0) > 0:
            problems.append(
                Problem(
                    f"{where}/manifest.json",
                    "no checksums recorded (written by an older "
                    "weanalysis; the next commit records them)",
                )
            )
        return 0, problems
    names = set(named_files(app_dir, manifest))
    for rel in sorted(names | set(sums)):
        path = app_dir / rel
        if rel not in sums:
            problems.append(Problem(f"{where}/{rel}", "named by the manifest, no checksum"))
            continue
        try:
            got = file_checksum(path)
        except FileNotFoundError:
            problems.append(Problem(f"{where}/{rel}", "missing"))
            continue
        if got != sums[rel]:
            problems.append(Problem(f"{where}/{rel}", f"checksum {got}, expected {sums[rel]}"))
    return len(sums), problems


def verified(app_dir: Path, manifest: dict, rel: str) -> Path:
    """``app_dir / rel`` after verifying it (a folder: each file in it) against the checksums
    ``manifest`` records; how the writer reads the runs it merges, so that a damaged file is
    never folded into a new one with a fresh checksum. Files without a recorded checksum (new
    in this commit, or written before checksums) are taken as they are."""
    sums = manifest.get("checksums")
    path = app_dir / rel
    if sums is None:
        return path
    if rel in sums:
        VERIFIED.check(path, sums[rel])
    else:
        prefix = rel + "/"
        for name, want in sums.items():
            if name.startswith(prefix):
                VERIFIED.check(app_dir / name, want)
    return path
