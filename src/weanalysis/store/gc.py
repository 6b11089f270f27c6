"""Garbage: superseded files deleted once no reader needs them, orphans of killed commits."""

from __future__ import annotations

import os
import re
from pathlib import Path

from weanalysis.store.leases import held_versions
from weanalysis.store.snapshot import MANIFEST, SUBFOLDERS, named_files

_VERSION = re.compile(r"-v(\d+)")


def version_of(name: str) -> int:
    m = _VERSION.search(name)
    return int(m.group(1)) if m else 0


def collect_garbage(app_dir: Path, garbage: list) -> None:
    """Delete superseded files no reader can need: a file written at version ``c`` and
    superseded at ``s`` is named only by manifests ``c .. s-1``; it goes unless a reader
    holds a lease on one of them."""
    if not garbage:
        return
    held = held_versions(app_dir)
    for name, superseded in garbage:
        created = version_of(name)
        if not any(created <= v < superseded for v in held):
            remove(app_dir / name)


def remove_orphans(app_dir: Path, manifest: dict) -> int:
    """Remove files of commits that never published (killed, or failed on a full disk):
    everything in the store's sub-folders that the manifest neither names nor lists as
    garbage. Only safe under the write lock. Returns how many entries went."""
    known = set(named_files(manifest)) | {g[0] for g in manifest.get("garbage", [])}
    removed = 0
    for sub in SUBFOLDERS:
        folder = app_dir / sub
        if not folder.is_dir():
            continue
        for entry in os.listdir(folder):
            if f"{sub}/{entry}" not in known:
                remove(folder / entry)
                removed += 1
    for entry in os.listdir(app_dir):
        if entry.startswith(f".{MANIFEST}.tmp"):
            remove(app_dir / entry)
            removed += 1
    return removed


def remove(path: Path) -> None:
    try:
        if path.is_dir():
            for p in path.iterdir():
                p.unlink()
            path.rmdir()
        else:
            path.unlink()
    except FileNotFoundError:
        pass
