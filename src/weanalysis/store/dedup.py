"""Idempotency keys: 88-bit record keys and the sorted key sets that find duplicates.

A record with an ``event_id`` is keyed by it; one without by its whole canonical content
(SPEC.md 2.1). Keys are computed column by column with vectorised splitmix64 arithmetic over
numpy arrays: strings are hashed eight bytes at a time straight from their Arrow buffers (no
Python object per row), with two independently seeded 64-bit lanes. The code is our own, so
keys are stable across library versions and machines (unlike Python's ``hash``).

A key is 88 bits: the first lane whole and the low 24 bits of the second (storage format 4;
format 3 kept 128, and ``rebuild`` truncates its keys, which are the same hashes). A false
duplicate (a distinct record dropped because its key equals a stored one) needs two of the N
records of an app to share 88 bits: expected number about N^2 / 2^89 over the app's whole
life, 1.6e-9 at 1e9 records and 1.6e-7 at 1e10 (far below the odds of an undetected disk
error on the same data); at 64 bits it would be 2.7e-2 at 1e9, hence not fewer. A per-user
key of the user's id and a 64-bit hash (duplicates need the same user) costs as many bytes
here (a random 32-bit id compresses to ~22 bits) and has worse odds for heavy users
(sum of n_u^2 / 2^65: 2.7e-7 at 1e9 records if users have 1e4 each).

Key segments are stored as Parquet (:func:`save_keys`): sorted by the first lane, whose deltas
take ~43 of its 64 bits at 10M keys (DELTA_BINARY_PACKED), plus the 24 bits of the second
lane: about 8.4 bytes a key on disk instead of 16.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weanalysis.errors import StoreDamagedError
from weanalysis.records.validate import VISIT, ValidChunk
from weanalysis.store import files

M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
ABSENT = np.uint64(0x5A5A_0000_ABCD_1234)
SEEDS = (np.uint64(0x243F6A8885A308D3), np.uint64(0x13198A2E03707344))
TAG_EVENT, TAG_CONTENT = np.uint64(1), np.uint64(2)


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + GOLDEN
        x = (x ^ (x >> np.uint64(30))) * M1
        x = (x ^ (x >> np.uint64(27))) * M2
        return x ^ (x >> np.uint64(31))


# Strings longer than this are hashed once per distinct value (user agents: few, long).
WIDE_STRING = 256
LANE_MUL = (np.uint64(31), np.uint64(0x100000001B3))


def string_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a string array's values, one after the other and followed by eight
    zero bytes (so that any string's last word can be read whole), with each value's start in
    them and its length."""
    arr = arr.cast(pa.large_string())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
    base, top = int(offsets[0]), int(offsets[-1])
    padded = np.zeros(top - base + 8, dtype=np.uint8)
    if bufs[2] is not None and top > base:
        padded[: top - base] = np.frombuffer(bufs[2], dtype=np.uint8)[base:top]
    return padded, offsets[:-1] - base, offsets[1:] - offsets[:-1]


def _words(arr: pa.Array) -> tuple[list[np.ndarray], np.ndarray]:
    """Each string's UTF-8 bytes as little-endian uint64 words (zero-padded), and lengths.

    Word ``k`` of a string starting at byte ``s`` is the 8 bytes from ``s + 8k`` (past the end
    of the data: zeros) with the bytes past the string's end masked off: a handful of
    whole-array operations, no loop over rows, and memory for one word of each string at a time.
    """
    n = len(arr)
    padded, starts, lens = string_bytes(arr)
    size = len(padded) - 8  # the strings' bytes
    within = np.arange(8, dtype=np.int64)
    words = []
    for k in range(-(-int(lens.max(initial=0)) // 8)):
        at = np.minimum(starts + 8 * k, size)
        word = padded[at[:, None] + within].view("<u8").reshape(n)
        left = np.clip(lens - 8 * k, 0, 8).astype(np.uint64)
        mask = np.where(
            left >= 8,
            np.uint64(0xFFFFFFFFFFFFFFFF),
            (np.uint64(1) << (left * np.uint64(8))) - np.uint64(1),
        )
        words.append(word.astype(np.uint64) & mask)
    return words, lens


def hash_strings(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Two uint64 lanes per string of an Arrow string array; nulls get the ABSENT sentinel."""
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    words, lens = _words(arr)
    lanes = []
    with np.errstate(over="ignore"):
        for seed, mul in zip(SEEDS, LANE_MUL, strict=True):
            h = _splitmix(seed ^ lens.astype(np.uint64))
            for k, w in enumerate(words):
                # only a string's own words: its hash must not depend on its neighbours
                more = lens > 8 * k
                h = np.where(more, _splitmix(h * mul ^ w), h)
            lanes.append(h)
    absent = arr.is_null().to_numpy(zero_copy_only=False)
    for h in lanes:
        h[absent] = ABSENT
    return lanes[0], lanes[1]


def string_lanes(values: pa.Array | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two uint64 lanes per string (absent: a fixed sentinel)."""
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
    if isinstance(arr, pa.DictionaryArray):
        arr = arr.cast(pa.string())
    if len(arr) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    longest = pc.max(pc.binary_length(arr)).as_py() or 0
    if longest <= WIDE_STRING:
        return hash_strings(arr)
    enc = arr.dictionary_encode()  # long strings: hash each distinct one once
    h0, h1 = hash_strings(enc.dictionary)
    h0, h1 = np.append(h0, ABSENT), np.append(h1, ABSENT)
    idx = enc.indices.fill_null(len(enc.dictionary)).to_numpy(zero_copy_only=False)
    return h0[idx], h1[idx]


def int_lanes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = values.astype(np.int64).view(np.uint64)
    return v, v


class KeyBuilder:
    """Accumulates fields into two 64-bit lanes."""

    def __init__(self, n: int, tag: np.uint64):
        self.lanes = [np.full(n, s ^ tag, dtype=np.uint64) for s in SEEDS]

    def add(self, lanes: tuple[np.ndarray, np.ndarray]) -> KeyBuilder:
        with np.errstate(over="ignore"):
            for k in range(2):
                self.lanes[k] = _splitmix(self.lanes[k] * np.uint64(31) ^ lanes[k])
        return self

    def keys(self) -> np.ndarray:
        """An (n, 2) uint64 array: the first lane, and the second lane's low 24 bits."""
        return np.stack([self.lanes[0], self.lanes[1] & LANE1_MASK], axis=1)


LANE1_MASK = np.uint64(0xFF_FFFF)  # 88-bit keys (see the module's docstring)
_FLIP = np.uint64(1 << 63)  # unsigned order as signed order, for Parquet's signed deltas

# A key set in memory is split into PARTS by the top bits of lane 0 (a contiguous range of the
# sorted order each): a merge goes part by part and releases each input part once merged, so
# it never holds two copies of a whole set (at 50M keys: +600 MB instead of +1.7 GB).
PART_BITS = 6
PARTS = 1 << PART_BITS
# where each part but the first begins, as flipped (signed) lane-0 values
_PART_STARTS = ((np.arange(1, PARTS, dtype=np.uint64) << np.uint64(64 - PART_BITS)) ^ _FLIP).view(
    np.int64
)


def truncate(keys: np.ndarray) -> np.ndarray:
    """Keys of storage format 3 (128 bits) as this format's (88): the same hashes, shorter."""
    out = np.array(keys, dtype=np.uint64, order="F")
    out[:, 1] &= LANE1_MASK
    return out


def _split(k0: np.ndarray, k1: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    at = np.searchsorted(k0, _PART_STARTS).tolist()
    return np.split(k0, at), np.split(k1, at)


class KeySet:
    """A sorted set of keys in memory, 12 bytes a key: lane 0 with its top bit flipped, as
    int64 (signed order is the unsigned order, and it is what the Parquet file holds, so saving
    copies nothing), and lane 1's 24 bits as uint32; both in :data:`PARTS` parts."""

    def __init__(self, k0: list[np.ndarray], k1: list[np.ndarray]):
        self.k0, self.k1 = k0, k1

    @classmethod
    def of(cls, keys: np.ndarray) -> KeySet:
        """The set of an (n, 2) uint64 key array (as :meth:`KeyBuilder.keys` gives)."""
        k0 = (keys[:, 0] ^ _FLIP).view(np.int64)
        order = np.argsort(k0, kind="stable")
        return cls(*_split(k0[order], keys[order, 1].astype(np.uint32)))

    def __len__(self) -> int:
        return sum(len(p) for p in self.k0)

    def array(self) -> np.ndarray:
        """As a sorted (n, 2) uint64 array (lane 0, lane 1's 24 bits)."""
        out = np.empty((len(self), 2), dtype=np.uint64, order="F")
        out[:, 0] = np.concatenate(self.k0).view(np.uint64) ^ _FLIP
        out[:, 1] = np.concatenate(self.k1)
        return out

    def merge(self, newer: KeySet) -> KeySet:
        """This set and ``newer`` as one; both are emptied, part by part, as they are merged
        (ties in lane 0: this set's keys first)."""
        k0: list[np.ndarray] = []
        k1: list[np.ndarray] = []
        for p in range(PARTS):
            a0, b0 = self.k0[p], newer.k0[p]
            # where each of newer's keys goes: after this set's keys not greater than it
            at = np.searchsorted(a0, b0, side="right") + np.arange(len(b0))
            mine = np.ones(len(a0) + len(b0), dtype=bool)
            mine[at] = False
            for lanes, a, b in ((k0, a0, b0), (k1, self.k1[p], newer.k1[p])):
                out = np.empty(len(mine), dtype=a.dtype)
                out[mine] = a
                out[at] = b
                lanes.append(out)
            for s in (self, newer):  # release the merged parts
                s.k0[p] = s.k0[p][:0]
                s.k1[p] = s.k1[p][:0]
        return KeySet(k0, k1)

    @classmethod
    def union(cls, sets: Iterable[KeySet]) -> KeySet:
        """One set of the keys of all of these, merged one after another (each emptied as it
        is merged); no sets: an empty one."""
        out = None
        for one in sets:
            out = one if out is None else out.merge(one)
        return out if out is not None else cls.of(np.zeros((0, 2), dtype=np.uint64))

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Boolean mask: which rows of an (n, 2) uint64 key array are in this set."""
        n = len(keys)
        found = np.zeros(n, dtype=bool)
        if n == 0 or len(self) == 0:
            return found
        q0 = (keys[:, 0] ^ _FLIP).view(np.int64)
        # sorted needles: the searches walk the haystack in order, which caches far better
        order = np.argsort(q0)
        q0 = q0[order]
        q1 = (keys[order, 1] & LANE1_MASK).astype(np.uint32)
        bounds = [0, *np.searchsorted(q0, _PART_STARTS).tolist(), n]
        hit = np.zeros(n, dtype=bool)
        for p in range(PARTS):
            lo, hi = bounds[p], bounds[p + 1]
            if hi > lo and len(self.k0[p]):
                hit[lo:hi] = _member(self.k0[p], self.k1[p], q0[lo:hi], q1[lo:hi])
        found[order] = hit
        return found

    def without(self, gone: KeySet) -> KeySet:
        """This set less the keys in ``gone``."""
        k0, k1 = [], []
        for p in range(PARTS):
            h0, h1 = self.k0[p], self.k1[p]
            keep = ~_member(gone.k0[p], gone.k1[p], h0, h1) if len(gone.k0[p]) else None
            k0.append(h0 if keep is None else h0[keep])
            k1.append(h1 if keep is None else h1[keep])
        return KeySet(k0, k1)

    def save(self, path) -> None:
        """As a new immutable Parquet file (one row group or more per part; nothing copied)."""
        cols = {
            "k0": pa.chunked_array([pa.array(a) for a in self.k0], pa.int64()),
            "k1": pa.chunked_array([pa.array(a) for a in self.k1], pa.uint32()),
        }
        files.write_parquet(path, pa.table(cols))

    @classmethod
    def load(cls, path) -> KeySet:
        """A key segment written by :meth:`save`, read a row group at a time; a file that is
        not one is a StoreDamagedError."""
        k0: list[list[np.ndarray]] = [[] for _ in range(PARTS)]
        k1: list[list[np.ndarray]] = [[] for _ in range(PARTS)]
        try:
            f = pq.ParquetFile(path)
            for g in range(f.num_row_groups):
                t = f.read_row_group(g, columns=["k0", "k1"])
                a0 = t.column("k0").to_numpy()
                a1 = t.column("k1").to_numpy()
                if a0.dtype != np.int64 or a1.dtype != np.uint32:
                    raise ValueError(f"column types {a0.dtype}, {a1.dtype}")
                for p, (b0, b1) in enumerate(zip(*_split(a0, a1), strict=True)):
                    if len(b0):
                        k0[p].append(b0)
                        k1[p].append(b1)
        except FileNotFoundError:
            raise StoreDamagedError(path, "the file is missing") from None
        except (pa.ArrowException, OSError, KeyError, ValueError) as e:
            raise StoreDamagedError(path, f"not a key segment ({e})") from None
        return cls(
            [np.concatenate(p) if p else np.zeros(0, np.int64) for p in k0],
            [np.concatenate(p) if p else np.zeros(0, np.uint32) for p in k1],
        )


def _member(h0: np.ndarray, h1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Which of the sorted needles ``(q0, q1)`` are in the sorted haystack ``(h0, h1)``."""
    n = len(h0)
    lo = np.searchsorted(h0, q0, side="left")
    at = np.minimum(lo, n - 1)
    eq0 = (lo < n) & (h0[at] == q0)
    hit = np.zeros(len(q0), dtype=bool)
    hit[eq0] = h1[at[eq0]] == q1[eq0]
    # the next entries may share the first lane (practically never): look at each of them
    for i in np.flatnonzero(eq0 & ~hit & (at + 1 < n) & (h0[np.minimum(at + 1, n - 1)] == q0)):
        j = int(at[i]) + 1
        while j < n and h0[j] == q0[i]:
            if h1[j] == q1[i]:
                hit[i] = True
                break
            j += 1
    return hit


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True for the first row of each distinct key within the batch."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(keys[:, 0], kind="stable")  # stable: earlier rows first
    h0, h1 = keys[order, 0], keys[order, 1]
    same0 = h0[1:] == h0[:-1]
    first = np.ones(n, dtype=bool)
    first[order[1:][same0 & (h1[1:] == h1[:-1])]] = False
    # a run of three or more equal first lanes may interleave second lanes: settle it exactly
    if same0.any():
        edges = np.diff(np.concatenate([[0], same0.astype(np.int8), [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            if b - a >= 2:
                seen: set[int] = set()
                for pos in range(int(a), int(b) + 1):
                    first[int(order[pos])] = int(h1[pos]) not in seen
                    seen.add(int(h1[pos]))
    return first


def content_keys(content: np.ndarray, uid: np.ndarray) -> np.ndarray:
    """Keys of records without an event id: their content lanes mixed with the user's id."""
    return (
        KeyBuilder(len(uid), TAG_CONTENT)
        .add((content[:, 0], content[:, 1]))
        .add(int_lanes(uid))
        .keys()
    )


def event_keys(event_id: pa.Array) -> np.ndarray:
    """Keys of the event ids ((n, 2); rows without one get zeros): needs no user id, so it can
    be computed before the writer takes its lock."""
    keys = np.zeros((len(event_id), 2), dtype=np.uint64)
    has_event = event_id.is_valid().to_numpy(zero_copy_only=False)
    if has_event.any():
        ev = KeyBuilder(int(has_event.sum()), TAG_EVENT)
        ev.add(string_lanes(event_id.filter(pa.array(has_event))))
        keys[has_event] = ev.keys()
    return keys


def record_keys(
    content: np.ndarray, uid: np.ndarray, event_id: pa.Array, events: np.ndarray | None = None
) -> np.ndarray:
    """Final keys: the event id where there is one, else the content mixed with the user."""
    keys = content_keys(content, uid)
    has_event = event_id.is_valid().to_numpy(zero_copy_only=False)
    if has_event.any():
        if events is None:
            events = event_keys(event_id)
        keys[has_event] = events[has_event]
    return keys


def _coded_lanes(col) -> tuple[np.ndarray, np.ndarray]:
    """Hash lanes of a coded column: each distinct value hashed once."""
    lanes = string_lanes(pa.array(list(col.values) + [None], pa.string()))
    return lanes[0][col.idx], lanes[1][col.idx]


def content_lanes(v: ValidChunk, rows: np.ndarray) -> np.ndarray:
    """The content part of the idempotency key: every canonical field but the user.

    The writer mixes in the user's dense id (cheaper than hashing openid strings), and uses
    the event id instead wherever there is one.
    """
    n = len(rows)
    k = KeyBuilder(n, TAG_CONTENT)
    k.add(int_lanes(v.time_ms[rows])).add(int_lanes(v.gender[rows])).add(int_lanes(v.age[rows]))
    if v.kind == VISIT:
        k.add(int_lanes(v.province[rows].astype(np.int64) << 32 | v.city[rows]))
        k.add(int_lanes(v.platform[rows]))
        ip = v.ip[rows]
        v4 = v.ipv4[rows]
        v6 = (v4 == 0) & (ip != None)  # noqa: E711
        ip_lanes = [v4.astype(np.uint64), v4.astype(np.uint64)]
        if v6.any():
            h0, h1 = string_lanes(pa.array(ip[v6], pa.string()))
            ip_lanes[0][v6], ip_lanes[1][v6] = h0, h1
        k.add((ip_lanes[0], ip_lanes[1]))
        for col in (v.brand, v.model, v.user_agent):
            k.add(_coded_lanes(col.take(rows)))
    return np.stack(k.lanes, axis=1)  # both lanes whole: mixed with the user's id later
