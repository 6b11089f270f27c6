"""Housekeeping of a data folder: removing an app.

Superseded files need no housekeeping command: a commit deletes them as soon as no reader
holds a lease on a state that names them, and a writer opening an app removes the files of
commits that never published (:mod:`weanalysis.store.gc`).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from weanalysis.store import files
from weanalysis.store.catalog import Catalog, CatalogError
from weanalysis.store.writer import WriterLock

REMOVED_PREFIX = ".removed-"


def remove_app(data_dir: Path, catalog: Catalog, appid: str) -> None:
    """The app's data, its tokens and its registration are gone; the appid is unknown."""
    if catalog.get(appid) is None:
        raise CatalogError(f"app {appid!r} is not registered")
    with WriterLock(data_dir):
        apps = data_dir / "apps"
        d = apps / appid
        trash = apps / f"{REMOVED_PREFIX}{appid}-{time.time_ns()}"
        if d.exists():
            os.rename(d, trash)  # atomic: a new app of the same id starts empty
            files.fsync_dir(apps)
        catalog.remove_app(appid)
        # this one, and what an earlier removal killed half-way left behind
        for p in apps.glob(f"{REMOVED_PREFIX}*"):
            shutil.rmtree(p, ignore_errors=True)
