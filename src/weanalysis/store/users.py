"""The writer's openid -> user id index, exact and compact (about 45 bytes a user).

A user's id (uid) is its position in the concatenation of the app's user segments. The writer
needs, for each distinct openid of a batch, its uid or that it is new. A Python dict of every
openid costs ~150 bytes a user (a str, an int and a hash-table slot each): ~1 GB at 6.5M
users. Here the openids stay in Arrow string arrays (~32 bytes each at 28 characters), and a
64-bit hash of each is kept in sorted runs (8 bytes) beside its uid (4 bytes). A lookup hashes
the batch's openids with whole-array numpy operations, binary-searches the runs, and compares
the strings of every hash hit (``take`` + ``equal``): the hash only narrows the search, so two
openids sharing a hash never get each other's uid.

Runs are added and merged like the store's key segments: a commit's new users make a new run,
merged into the one before while it is at least half its size, so each entry is rewritten
O(log n) times and a live commit of ten visits does not copy the index.

Null openids (no real openid is one) take a position but are never matched.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from weanalysis.store import files
from weanalysis.store.dedup import _splitmix, string_bytes
from weanalysis.store.runs import merges_into_previous

SEED = np.uint64(0x243F6A8885A308D3)
MUL = np.uint64(0x100000001B3)
# New users' chunks of openids are merged up to this many bytes (the segments' are kept as
# they are read): few chunks to take strings from, and few bytes copied per commit.
CHUNK_BYTES = 64 << 20
# Strings hashed at a time (bounds the temporaries of building the index: ~40 bytes each).
HASH_ROWS = 1 << 18
# Runs of hashes kept apart at most (a lookup searches each).
MAX_RUNS = 8


def hash_openids(arr: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string's UTF-8 bytes (nulls: some value; callers skip them).

    Eight bytes at a time, read straight from the Arrow buffers (an unaligned uint64 view of
    the data, masked past each string's end); only strings that still have bytes are mixed
    at each step, so a few long openids do not slow down the rest. In memory only: its
    values may change between versions.
    """
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint64)
    data, starts, lens = string_bytes(arr)
    # the eight bytes from each byte position (numpy reads unaligned items)
    words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    h = _splitmix(SEED ^ lens.astype(np.uint64))
    rows: np.ndarray | None = None  # None: every row
    with np.errstate(over="ignore"):
        for k in range(-(-int(lens.max()) // 8)):
            if rows is None and (lens <= 8 * k).any():
                rows = np.flatnonzero(lens > 8 * k)
            elif rows is not None:
                rows = rows[lens[rows] > 8 * k]
            at = starts + 8 * k if rows is None else starts[rows] + 8 * k
            left = lens - 8 * k if rows is None else lens[rows] - 8 * k
            w = words[at]
            short = np.flatnonzero(left < 8)
            if len(short):
                w[short] &= (np.uint64(1) << (left[short].astype(np.uint64) * np.uint64(8))) - 1
            if rows is None:
                h = _splitmix(h * MUL ^ w)
            else:
                h[rows] = _splitmix(h[rows] * MUL ^ w)
    return h


def _hash(arr: pa.Array) -> np.ndarray:
    """:func:`hash_openids` a slice at a time (bounded temporaries)."""
    if len(arr) <= HASH_ROWS:
        return hash_openids(arr)
    return np.concatenate(
        [hash_openids(arr.slice(i, HASH_ROWS)) for i in range(0, len(arr), HASH_ROWS)]
    )


class UserIndex:
    """Every openid of an app with its uid; see the module's docstring.

    >>> idx = UserIndex()
    >>> idx.add(pa.array(["a", "b"]), 0)
    >>> idx.lookup(pa.array(["b", "c"])).tolist()
    [1, -1]
    """

    def __init__(self) -> None:
        self._chunks: list[pa.StringArray] = []  # the openids in uid order
        self._starts: list[int] = []  # uid of each chunk's first openid
        self._size = 0
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted hashes, their uids)

    @classmethod
    def of_segments(cls, paths: Iterable[Path]) -> UserIndex:
        """The index of user segments (Arrow files with an ``openid`` column), in order."""
        idx = cls()
        for path in paths:
            # read, not memory-mapped: a merged segment's file is deleted while its array lives
            col = files.read_arrow(path, mapped=False).column("openid")
            for chunk in col.cast(pa.string()).chunks:
                idx._append_chunk(chunk)
        if idx._chunks:
            h = np.empty(idx._size, dtype=np.uint64)
            for chunk, start in zip(idx._chunks, idx._starts, strict=True):
                h[start : start + len(chunk)] = _hash(chunk)
            uid = None  # no nulls: the uids are the positions in h
            if any(c.null_count for c in idx._chunks):
                valid = np.concatenate(
                    [c.is_valid().to_numpy(zero_copy_only=False) for c in idx._chunks]
                )
                uid = np.flatnonzero(valid).astype(np.uint32)
                h = h[valid]
            order = np.argsort(h)
            h = h[order]
            idx._runs = [(h, order.astype(np.uint32) if uid is None else uid[order])]
        return idx

    def __len__(self) -> int:
        """Positions (users, including erased ones), i.e. the next uid."""
        return self._size

    def add(self, openids: pa.Array, first_uid: int) -> None:
        """New users with uids ``first_uid``, ``first_uid + 1``, ...: they must come right
        after the users already in (uids are dense) and not be in yet."""
        if first_uid != self._size:
            raise ValueError(f"new users start at uid {self._size}, not {first_uid}")
        if len(openids) == 0:
            return
        chunk = openids.cast(pa.string())
        if isinstance(chunk, pa.ChunkedArray):
            chunk = chunk.combine_chunks()
        start = self._size
        self._append_chunk(pa.concat_arrays([chunk]))  # a copy: no slice of the batch is kept
        while len(self._chunks) >= 2 and 2 * self._chunks[-1].nbytes >= self._chunks[-2].nbytes:
            if self._chunks[-1].nbytes + self._chunks[-2].nbytes > CHUNK_BYTES:
                break
            merged = pa.concat_arrays(self._chunks[-2:])
            del self._chunks[-2:]
            self._chunks.append(merged)
            self._starts.pop()
        h, uid = _valid_hashes(chunk, start)
        order = np.argsort(h)
        self._runs.append((h[order], uid[order]))
        while merges_into_previous([len(h) for h, _ in self._runs], MAX_RUNS):
            (h0, u0), (h1, u1) = self._runs[-2:]
            at = np.searchsorted(h0, h1)
            self._runs[-2:] = [(np.insert(h0, at, h1), np.insert(u0, at, u1))]

    def lookup(self, distinct: pa.Array) -> np.ndarray:
        """The uid of each openid (int64), -1 for one not in the index (and for nulls)."""
        n = len(distinct)
        out = np.full(n, -1, dtype=np.int64)
        if n == 0 or not self._runs:
            return out
        q = distinct.cast(pa.string())
        hq = _hash(q)
        # sorted needles: the binary searches walk the runs in order, which caches far better
        order = np.argsort(hq)
        hq = hq[order]
        for hashes, uids in self._runs:
            todo = np.flatnonzero(out[order] < 0)
            if len(todo) == 0:
                break
            pos = np.searchsorted(hashes, hq[todo])
            # the entry at pos, then (when its string differs: two openids share the hash,
            # practically never) the entries after it with the same hash, one step at a time
            while len(todo):
                inside = pos < len(hashes)
                inside[inside] = hashes[pos[inside]] == hq[todo[inside]]
                todo, pos = todo[inside], pos[inside]
                cand = uids[pos].astype(np.int64)
                same = self._equal(cand, q, order[todo])
                out[order[todo[same]]] = cand[same]
                todo, pos = todo[~same], pos[~same] + 1
        return out

    def openids(self, uids: np.ndarray) -> pa.Array:
        """The openids of these uids (string array, null for erased users)."""
        uids = np.asarray(uids, dtype=np.int64)
        parts = list(self._by_chunk(uids))
        if not parts:
            return pa.array([], pa.string())
        if len(parts) == 1:
            return parts[0][1].take(np.argsort(parts[0][0]))
        inverse = np.empty(len(uids), dtype=np.int64)
        inverse[np.concatenate([at for at, _ in parts])] = np.arange(len(uids))
        return pa.concat_arrays([strings for _, strings in parts]).take(inverse)

    def nbytes(self) -> int:
        """Bytes of the index's arrays (strings, hashes, uids)."""
        strings = sum(c.nbytes for c in self._chunks)
        return strings + sum(h.nbytes + u.nbytes for h, u in self._runs)

    def _by_chunk(self, uids: np.ndarray):
        """(positions in ``uids``, their openids) per chunk holding some of them."""
        if len(uids) and (uids.min() < 0 or uids.max() >= self._size):
            raise IndexError("uid out of range")
        if len(self._chunks) == 1:
            yield np.arange(len(uids)), self._chunks[0].take(uids)
            return
        # uids grouped by chunk with a stable counting sort (the chunk numbers are small)
        which = np.searchsorted(np.asarray(self._starts), uids, side="right") - 1
        order = np.argsort(which.astype(np.min_scalar_type(len(self._chunks))), kind="stable")
        ends = np.cumsum(np.bincount(which, minlength=len(self._chunks)))
        for c, (lo, hi) in enumerate(zip([0, *ends[:-1].tolist()], ends.tolist(), strict=True)):
            if hi > lo:
                at = order[lo:hi]
                yield at, self._chunks[c].take(uids[at] - self._starts[c])

    def _equal(self, uids: np.ndarray, queries: pa.Array, rows: np.ndarray) -> np.ndarray:
        """Whether the openid of ``uids[i]`` is ``queries[rows[i]]``, for each i."""
        same = np.zeros(len(uids), dtype=bool)
        for at, strings in self._by_chunk(uids):
            eq = pc.equal(strings, queries.take(rows[at]))
            same[at] = eq.fill_null(False).to_numpy(zero_copy_only=False)
        return same

    def _append_chunk(self, chunk: pa.Array) -> None:
        self._chunks.append(chunk)
        self._starts.append(self._size)
        self._size += len(chunk)


def _valid_hashes(chunk: pa.Array, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of a chunk's non-null openids, and their uids (uint32)."""
    h = _hash(chunk)
    uid = np.arange(start, start + len(chunk), dtype=np.uint32)
    if chunk.null_count:
        valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        h, uid = h[valid], uid[valid]
    return h, uid
