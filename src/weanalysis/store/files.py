"""Durable file primitives: write-then-fsync-then-rename, so a crash leaves old or new, never half.

Every data file of the store is immutable once written; the only file replaced in place is an
app's ``manifest.json``, and only through :func:`atomic_write_bytes`.

Each save helper computes the checksum of the bytes it writes (CRC-32, ~3 GB/s here: it finds
every flipped byte and burst up to 32 bits) and notes it in :data:`WRITTEN`, so that the manifest
can record ``path -> checksum`` for every file it names without reading anything back
(:func:`weanalysis.store.integrity.manifest_checksums`).
"""

from __future__ import annotations

import mmap
import os
import re
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from weanalysis.errors import StoreDamagedError


class _Written:
    """Checksums of the files this process wrote (absolute path -> checksum), until published."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[str, str] = {}

    def note(self, path: Path, digest: str) -> None:
        with self._lock:
            self._sums[str(Path(path).absolute())] = digest

    def pop(self, path: Path) -> str | None:
        with self._lock:
            return self._sums.pop(str(Path(path).absolute()), None)

    def drop_under(self, folder: Path) -> None:
        """Forget what was noted in ``folder`` (files a commit wrote and merged away at once)."""
        prefix = str(Path(folder).absolute()) + os.sep
        with self._lock:
            for k in [k for k in self._sums if k.startswith(prefix)]:
                del self._sums[k]

    def noted_under(self, folder: Path) -> list[str]:
        prefix = str(Path(folder).absolute()) + os.sep
        with self._lock:
            return [k for k in self._sums if k.startswith(prefix)]


WRITTEN = _Written()


def checksum(data) -> str:
    """The checksum of some bytes, as the manifest records it (``crc32:`` + 8 hex digits)."""
    return f"crc32:{zlib.crc32(data):08x}"


class _Summing:
    """A write-only file object that checksums what goes through it (numpy and pyarrow write
    through it in pieces: no copy of a whole file in memory). Closing it leaves the file open."""

    def __init__(self, f) -> None:
        self.f = f
        self.crc = 0
        self.closed = False

    def write(self, data) -> int:
        self.crc = zlib.crc32(data, self.crc)
        return self.f.write(data)

    def tell(self) -> int:
        return self.f.tell()

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.closed = True


@contextmanager
def _new_file(path: Path) -> Iterator[_Summing]:
    """A new immutable file, written through a checksumming file object; then fsynced (the
    directory is synced by the commit) and its checksum noted in :data:`WRITTEN`."""
    with open(path, "wb") as f:
        out = _Summing(f)
        yield out
        f.flush()
        os.fsync(f.fileno())
    WRITTEN.note(path, f"crc32:{out.crc:08x}")


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
    WRITTEN.note(path, checksum(data))


def write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def write_npy(path: Path, arr: np.ndarray) -> None:
    """Writes a new immutable .npy (fsynced; the directory is synced by the commit)."""
    if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = np.ascontiguousarray(arr)
    with _new_file(path) as out:  # numpy writes in chunks: no second copy of a big array
        np.save(out, arr, allow_pickle=False)


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


# Parquet encodings by column name (the raw segments' and key segments' columns); every other
# column is dictionary-encoded (Parquet's default, which suits small domains: provinces,
# platforms, devices, brands). Measured on the bench's raw segments (bytes per row, zstd 1):
# seq 1.28 -> 0.01, time_ms 2.1 -> 1.3 and uid 3.6 -> 2.8 with deltas (storage order, times
# nearly sorted); event ids 9.26 -> 8.42 and IPs 1.64 -> 1.51 with their lengths apart from
# their bytes (no dictionary: nearly all distinct). Higher zstd levels gained < 1 % for
# 20-60 % more write time.
ENCODINGS = {
    "seq": "DELTA_BINARY_PACKED",
    "time_ms": "DELTA_BINARY_PACKED",
    "day": "DELTA_BINARY_PACKED",
    "uid": "DELTA_BINARY_PACKED",
    "event_id": "DELTA_LENGTH_BYTE_ARRAY",
    "ip": "DELTA_LENGTH_BYTE_ARRAY",
    "k0": "DELTA_BINARY_PACKED",  # key segments: sorted
    "k1": "BYTE_STREAM_SPLIT",
    "t0": "BYTE_STREAM_SPLIT",  # day summaries' times (ms of the day: the high byte repeats)
    "dt1": "PLAIN",  # and the other columns' differences from it (almost all 0)
    "dt2": "PLAIN",
}
ZSTD_LEVEL = 1


def write_parquet(path: Path, table: pa.Table) -> None:
    """A new immutable Parquet file (zstd, the encodings of :data:`ENCODINGS`). Dictionary
    columns are written as their values, so that Parquet builds one dictionary of the values
    actually present (an Arrow dictionary may repeat values, which made Parquet give up on it)."""
    cols = [
        c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns
    ]
    table = pa.table(cols, names=table.column_names)
    enc = {n: ENCODINGS[n] for n in table.column_names if n in ENCODINGS}
    with _new_file(path) as out:  # written as it is encoded: no copy of the whole file
        pq.write_table(
            table,
            out,
            compression="zstd",
            compression_level=ZSTD_LEVEL,
            use_dictionary=[n for n in table.column_names if n not in enc],
            column_encoding=enc or None,
        )


def write_arrow(path: Path, table: pa.Table) -> None:
    """A new immutable Arrow IPC file, its buffers compressed with zstd (read back as they are
    by :func:`read_arrow`; openids take ~35 % less)."""
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with _new_file(path) as out, pa.ipc.new_file(out, table.schema, options=options) as w:
        w.write_table(table)


def read_arrow(path: Path, mapped: bool = True) -> pa.Table:
    """A file written by :func:`write_arrow`; ``mapped=False`` reads it into memory rather
    than memory-mapping it, for arrays kept after their file may be deleted."""
    try:
        with pa.memory_map(str(path)) if mapped else pa.OSFile(str(path)) as src:
            return pa.ipc.open_file(src).read_all()
    except FileNotFoundError:
        raise StoreDamagedError(path, "the file is missing") from None
    except (pa.ArrowException, OSError) as e:
        raise StoreDamagedError(path, f"not a readable Arrow file ({e})") from None
