"""Durable file primitives: write-then-fsync-then-rename, so a crash leaves old or new, never half.

Every data file of the store is immutable once written; the only file replaced in place is an
app's ``manifest.json``, and only through :func:`atomic_write_bytes`.
"""

from __future__ import annotations

import io
import mmap
import os
import re
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


def load_npy(path: Path, mmap: bool = True, ndim: int | None = 1) -> np.ndarray:
    """A stored array (memory-mapped unless ``mmap`` is false); a missing, truncated, zeroed
    or garbled file is a StoreDamagedError. ``ndim`` None: any number of dimensions."""
    try:
        arr = map_npy(path) if mmap else np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise StoreDamagedError(path, "the file is missing") from None
    except (ValueError, OSError, EOFError) as e:  # np.load's words for a broken file
        raise StoreDamagedError(path, f"not a readable array ({e})") from None
    if not isinstance(arr, np.ndarray) or (ndim is not None and arr.ndim != ndim):
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


_NPY_HEADER = re.compile(
    rb"\{'descr': '([<>|][a-z][0-9]+)', 'fortran_order': (True|False), "
    rb"'shape': \(([0-9, ]*)\), \}"
)


def map_npy(path: Path) -> np.ndarray:
    """A read-only memory map of a .npy file as a plain ndarray. The header is parsed here:
    ``np.load`` evaluates it as Python source, which costs more than a query's day column.
    A file shorter than its header says raises ValueError."""
    with open(path, "rb") as f:
        head = f.read(128)
        m = _NPY_HEADER.search(head)
        if head[:8] != b"\x93NUMPY\x01\x00" or m is None:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        offset = 10 + int.from_bytes(head[8:10], "little")
        shape = tuple(int(x) for x in m.group(3).replace(b" ", b"").split(b",") if x)
        dtype = np.dtype(m.group(1).decode())
        count = int(np.prod(shape)) if shape else 1
        if count == 0:
            return np.zeros(shape, dtype=dtype)
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    arr = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if m.group(2) == b"True" else "C")


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
