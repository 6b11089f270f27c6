"""Backups of a whole data folder, taken while it serves and ingests, and their restore.

A backup is one committed state of every app (not a torn one): under the store's write lock —
held for milliseconds — the catalog is copied by SQLite (VACUUM INTO) and every file the apps'
manifests name is hard-linked into a staging folder inside the data folder (files are immutable,
and only the lock holder deletes them). The copy to the destination then runs without the lock.

``DEST/backup-<UTC time>/`` is itself a data folder, plus ``BACKUP.json`` (written last: a
backup without it is incomplete) with the checksum of every file. Files already in the latest
backup with the same path and checksum are hard-linked from it instead of copied (stored files
are immutable and their names carry the commit), so a daily backup costs what changed.
Every copied file is checked against its checksum on the way: a damaged file stops the backup
with its name, instead of being preserved.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from weanalysis.errors import UserError
from weanalysis.store import files
from weanalysis.store.integrity import DamagedFileError, file_checksum, named_files
from weanalysis.store.snapshot import MANIFEST, read_manifest
from weanalysis.store.writer import WriterLock

BACKUP_FILE = "BACKUP.json"
BACKUP_FORMAT = 1
PREFIX = "backup-"
STAGING_PREFIX = ".backup-staging-"
CATALOG = "catalog.sqlite"
EXTRA_FILES = ("session.key", "device-names.json")  # copied when present
CHUNK = 4 << 20


class BackupError(UserError):
    """A backup or restore that cannot be done; the message says why."""


@dataclass
class BackupResult:
    path: Path
    files: int = 0
    copied: int = 0
    reused: int = 0
    bytes_copied: int = 0
    versions: dict[str, int] | None = None


def latest_backup(root: Path) -> Path | None:
    """The newest complete backup in ``root`` (or ``root`` itself when it is one)."""
    if (root / BACKUP_FILE).is_file():
        return root
    done = sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir() and (p / BACKUP_FILE).is_file())
    return done[-1] if done else None


def _copy(src: Path, dst: Path) -> str:
    """Copy a file (fsynced), returning the checksum of what was copied."""
    crc = 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while chunk := fi.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
            fo.write(chunk)
        fo.flush()
        os.fsync(fo.fileno())
    return f"crc32:{crc:08x}"


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def _stage(data_dir: Path, staging: Path) -> tuple[dict[str, str | None], dict[str, int]]:
    """Under the write lock: one committed state of the whole folder, as hard links.

    Returns ``{relative path: expected checksum or None}`` and each app's manifest version."""
    expected: dict[str, str | None] = {}
    versions: dict[str, int] = {}
    with WriterLock(data_dir):
        src = sqlite3.connect(data_dir / CATALOG)
        try:  # a consistent copy of the catalog, written by SQLite itself
            src.execute("VACUUM INTO ?", (str(staging / CATALOG),))
        finally:
            src.close()
        expected[CATALOG] = None
        apps = data_dir / "apps"
        for d in sorted(apps.iterdir()) if apps.is_dir() else []:
            if d.name.startswith(".") or not d.is_dir():
                continue
            # other files at the top of an app's folder (imported portraits): replaced only
            # under this lock, so copied as they are now
            for f in sorted(d.iterdir()):
                if f.is_file() and f.name != MANIFEST and not f.name.startswith("."):
                    dst = staging / "apps" / d.name / f.name
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, dst)
                    expected[f"apps/{d.name}/{f.name}"] = None
            if not (d / MANIFEST).is_file():
                read_manifest(d)  # no commit yet; refuses a lost manifest (stored files)
                continue
            raw = (d / MANIFEST).read_bytes()
            manifest = read_manifest(d)  # refuses a damaged manifest
            versions[d.name] = manifest["version"]
            sums = manifest.get("checksums") or {}
            for rel in sorted(set(named_files(d, manifest)) | set(sums)):
                _link_or_copy(d / rel, staging / "apps" / d.name / rel)
                expected[f"apps/{d.name}/{rel}"] = sums.get(rel)
            out = staging / "apps" / d.name / MANIFEST
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(raw)
            expected[f"apps/{d.name}/{MANIFEST}"] = files.checksum(raw)
        for name in EXTRA_FILES:
            if (data_dir / name).is_file():
                shutil.copy2(data_dir / name, staging / name)
                expected[name] = None
    return expected, versions


def backup(
    data_dir: Path, dest: Path, progress: Callable[[int], None] | None = None
) -> BackupResult:
    """Write a consistent, verified copy of ``data_dir`` into a new folder under ``dest``."""
    data_dir, dest = Path(data_dir), Path(dest)
    if not (data_dir / CATALOG).is_file():
        raise BackupError(f"no data folder at {data_dir}")
    if dest.resolve().is_relative_to(data_dir.resolve()):
        raise BackupError("the backup destination must be outside the data folder")
    if (dest / BACKUP_FILE).exists():
        raise BackupError(f"{dest} is a backup itself: give the folder that holds the backups")
    dest.mkdir(parents=True, exist_ok=True)
    _clean_staging(data_dir)
    prev = latest_backup(dest)
    prev_sums = orjson.loads((prev / BACKUP_FILE).read_bytes())["files"] if prev else {}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    final = dest / f"{PREFIX}{stamp}"
    partial = dest / f".{PREFIX}{stamp}.partial"
    staging = data_dir / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    result = BackupResult(final)
    try:
        expected, result.versions = _stage(data_dir, staging)
        sums: dict[str, str] = {}
        for rel, want in sorted(expected.items()):
            src = staging / rel
            if want is not None and prev_sums.get(rel) == want:
                _link_or_copy(prev / rel, partial / rel)
                sums[rel] = want
                result.reused += 1
            else:
                got = _copy(src, partial / rel)
                if want is not None and got != want:
                    raise DamagedFileError(data_dir / rel, f"checksum {got}, expected {want}")
                sums[rel] = got
                result.copied += 1
                result.bytes_copied += src.stat().st_size
            if progress:
                progress(1)
        result.files = len(sums)
        doc = {
            "format": BACKUP_FORMAT,
            "created_at": time.time(),
            "versions": result.versions,
            "files": sums,
        }
        files.atomic_write_bytes(
            partial / BACKUP_FILE, orjson.dumps(doc, option=orjson.OPT_INDENT_2)
        )
        for folder in sorted({(partial / rel).parent for rel in sums}, reverse=True):
            files.fsync_dir(folder)
        os.rename(partial, final)
        files.fsync_dir(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _clean_staging(data_dir: Path) -> None:
    """Staging folders of backups that died (their process is gone)."""
    for p in data_dir.glob(f"{STAGING_PREFIX}*"):
        pid = p.name[len(STAGING_PREFIX) :].split("-")[0]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            pass


@dataclass
class RestoreResult:
    source: Path
    files: int
    bytes: int


def restore(source: Path, data_dir: Path) -> RestoreResult:
    """Copy a backup (or the newest one under ``source``) into a new data folder, verifying
    every file; ``data_dir`` must not exist or be empty."""
    source, data_dir = Path(source), Path(data_dir)
    found = latest_backup(source)
    if found is None:
        raise BackupError(f"no complete backup at {source} (a backup ends with {BACKUP_FILE})")
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore into a new folder")
    doc = orjson.loads((found / BACKUP_FILE).read_bytes())
    if doc.get("format") != BACKUP_FORMAT:
        raise BackupError(f"{found}: backup format {doc.get('format')} is not {BACKUP_FORMAT}")
    partial = data_dir.with_name(f".{data_dir.name}.restoring-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    total = 0
    try:
        for rel, want in sorted(doc["files"].items()):
            try:
                got = _copy(found / rel, partial / rel)
            except FileNotFoundError:
                raise DamagedFileError(found / rel, "missing") from None
            if got != want:
                raise DamagedFileError(found / rel, f"checksum {got}, expected {want}")
            total += (partial / rel).stat().st_size
        key = partial / "session.key"
        if key.exists():
            key.chmod(0o600)
        for folder in sorted({(partial / rel).parent for rel in doc["files"]}, reverse=True):
            files.fsync_dir(folder)
        if data_dir.exists():
            data_dir.rmdir()
        os.rename(partial, data_dir)
        files.fsync_dir(data_dir.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return RestoreResult(found, len(doc["files"]), total)


__all__ = ["BackupError", "BackupResult", "backup", "latest_backup", "restore", "file_checksum"]
