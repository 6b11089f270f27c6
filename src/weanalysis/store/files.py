"""Durable file primitives: write-then-fsync-then-rename, so a crash leaves old or new, never half.

Every data file of the store is immutable once written; the only file replaced in place is an
app's ``manifest.json``, and only through :func:`atomic_write_bytes`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from weanalysis.errors import StoreDamagedError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def write_npy(path: Path, arr: np.ndarray) -> None:
    """Writes a new immutable .npy (fsynced; the directory is synced by the commit)."""
    with open(path, "wb") as f:
        if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
            arr = np.ascontiguousarray(arr)
        np.save(f, arr, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def load_npy(path: Path, mmap: bool = True, ndim: int = 1) -> np.ndarray:
    """A stored array; a missing, truncated, zeroed or garbled file is a StoreDamagedError."""
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise StoreDamagedError(path, "the file is missing") from None
    except (ValueError, OSError, EOFError) as e:  # np.load's words for a broken file
        raise StoreDamagedError(path, f"not a readable array ({e})") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != ndim:
        raise StoreDamagedError(path, f"not a {ndim}-dimensional array")
    return arr


def load_json(path: Path) -> object:
    """A stored JSON file; missing or not JSON is a StoreDamagedError."""
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise StoreDamagedError(path, "the file is missing") from None
    except orjson.JSONDecodeError as e:
        raise StoreDamagedError(path, f"not JSON ({e})") from None


def write_parquet(path: Path, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", compression_level=1)
    with open(path, "wb") as f:
        f.write(buf.getbuffer())
        f.flush()
        os.fsync(f.fileno())


def write_arrow(path: Path, table: pa.Table) -> None:
    with open(path, "wb") as f:
        with pa.ipc.new_file(f, table.schema) as w:
            w.write_table(table)
        f.flush()
        os.fsync(f.fileno())


def read_arrow(path: Path) -> pa.Table:
    try:
        with pa.memory_map(str(path)) as src:
            return pa.ipc.open_file(src).read_all()
    except FileNotFoundError:
        raise StoreDamagedError(path, "the file is missing") from None
    except (pa.ArrowException, OSError) as e:
        raise StoreDamagedError(path, f"not a readable Arrow file ({e})") from None
