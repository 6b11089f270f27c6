"""Reader leases: how the writer knows which superseded files a reader may still be reading.

A reader holding a snapshot of manifest version ``v`` holds a shared ``flock`` on
``leases/<v>`` in the app's folder (one file per version, shared by every reader of it; a
lock belongs to an open file, so readers in the same process or in others count alike, and a
reader that dies releases it with its file descriptors). A file superseded at version ``s``
and written at version ``c`` is named only by manifests ``c .. s-1``: the writer deletes it as
soon as no lease in that range is held — at once when no reader is behind, and without any
grace period, so a full disk recovers by itself at the next commit.

The writer tests a lease with a non-blocking exclusive lock; a lease file nobody holds is
removed while the writer holds that lock. A reader that locked a file the writer had just
removed sees the path gone (or now another file) and starts again.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LEASES = "leases"


class Lease:
    """A shared lock on ``leases/<version>``; released by :meth:`release` or when collected."""

    def __init__(self, app_dir: Path, version: int):
        self.version = version
        self._fd: int | None = None
        folder = app_dir / LEASES
        path = folder / str(version)
        for _ in range(100):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                folder.mkdir(parents=True, exist_ok=True)
                continue
            except OSError:
                return  # a read-only folder: nobody collects garbage there either
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return
            os.close(fd)  # the writer removed it between our open and our lock: again

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.release()


def held_versions(app_dir: Path) -> list[int]:
    """Versions some reader holds a lease on; lease files nobody holds are removed."""
    folder = app_dir / LEASES
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    held = []
    for name in names:
        if not name.isdigit():
            continue
        path = folder / name
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(int(name))
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)
    return sorted(held)
