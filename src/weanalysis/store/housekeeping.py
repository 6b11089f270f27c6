"""Housekeeping of a data folder: removing an app, and deleting what no state names any more.

Both run under the store's write lock. Files replaced by a commit stay for a grace period (a
reader holding an older snapshot may still be reading them); after it, a commit or ``gc``
deletes them, with files of interrupted commits and of removed apps.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from weanalysis.store import files
from weanalysis.store.catalog import Catalog, CatalogError
from weanalysis.store.integrity import named_files
from weanalysis.store.maintenance import SUBFOLDERS, Trimmed, apply_retention
from weanalysis.store.snapshot import MANIFEST, read_manifest, write_manifest
from weanalysis.store.writer import GARBAGE_GRACE_S, WriterLock, _remove

REMOVED_PREFIX = ".removed-"


def remove_app(data_dir: Path, catalog: Catalog, appid: str) -> None:
    """The app's data, its tokens and its registration are gone; the appid is unknown."""
    if catalog.get(appid) is None:
        raise CatalogError(f"app {appid!r} is not registered")
    with WriterLock(data_dir):
        d = data_dir / "apps" / appid
        trash = data_dir / "apps" / f"{REMOVED_PREFIX}{appid}-{time.time_ns()}"
        if d.exists():
            os.rename(d, trash)  # atomic: a new app of the same id starts empty
            files.fsync_dir(data_dir / "apps")
        catalog.remove_app(appid)
        shutil.rmtree(trash, ignore_errors=True)


@dataclass
class Collected:
    files: int = 0
    trimmed: dict[str, Trimmed] | None = None


def gc(data_dir: Path, catalog: Catalog, now: float | None = None) -> Collected:
    """Apply each app's retention, delete files no state names any more (after the grace
    period that lets a reader finish a query), and what removed apps left behind."""
    out = Collected(trimmed={})
    now = time.time() if now is None else now
    for app in catalog.list():
        t = apply_retention(data_dir, app)
        if t is not None:
            out.trimmed[app.appid] = t
    with WriterLock(data_dir):
        apps = data_dir / "apps"
        for d in sorted(apps.iterdir()) if apps.exists() else []:
            if d.name.startswith(REMOVED_PREFIX):
                shutil.rmtree(d, ignore_errors=True)
                out.files += 1
                continue
            if not d.is_dir() or not (d / MANIFEST).exists():
                continue
            out.files += _collect_app(d, now)
    return out


def _collect_app(d: Path, now: float) -> int:
    manifest = read_manifest(d)
    named = set(named_files(d, manifest))
    pending = {g for g, t in manifest.get("garbage", []) if now - t < GARBAGE_GRACE_S}
    removed = 0
    for sub in SUBFOLDERS:
        folder = d / sub
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            rel = f"{sub}/{p.name}"
            inside = {f"{rel}/{c.name}" for c in p.iterdir()} if p.is_dir() else {rel}
            if inside & named or rel in pending:
                continue
            try:
                age = now - p.stat().st_mtime
            except FileNotFoundError:
                continue
            if age >= GARBAGE_GRACE_S:  # also files of a commit that never published
                _remove(p)
                removed += 1
    kept = [[g, t] for g, t in manifest.get("garbage", []) if now - t < GARBAGE_GRACE_S]
    if kept != manifest.get("garbage", []):
        m = dict(manifest)
        m["garbage"] = kept
        write_manifest(d, m)
    return removed
