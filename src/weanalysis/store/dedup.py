"""Idempotency keys: 128-bit record keys and the sorted key sets that find duplicates.

A record with an ``event_id`` is keyed by it; one without by its whole canonical content
(SPEC.md 2.1). Keys are computed column by column: each distinct string is hashed once with
BLAKE2b (stable across versions and machines, unlike Python's ``hash``), and the per-field
64-bit lanes are mixed with vectorised splitmix64 arithmetic. Two 64-bit lanes make a false
duplicate (a lost record) practically impossible (~1e-20 at 1e9 records).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

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


def _blake(s: str) -> tuple[int, int]:
    d = hashlib.blake2b(s.encode("utf-8"), digest_size=16).digest()
    return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little")


def string_lanes(values: pa.Array | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two uint64 lanes per string (absent: a fixed sentinel); each distinct one hashed once."""
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    enc = arr.dictionary_encode()
    distinct = enc.dictionary.to_pylist()
    table = np.empty((len(distinct) + 1, 2), dtype=np.uint64)
    for i, s in enumerate(distinct):
        table[i] = _blake(s)
    table[-1] = (ABSENT, ABSENT)
    idx = enc.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
    lanes = table[idx]
    return lanes[:, 0].copy(), lanes[:, 1].copy()


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
        """An (n, 2) uint64 array."""
        return np.stack(self.lanes, axis=1)


def sort_keys(keys: np.ndarray) -> np.ndarray:
    """Sorted by lane 0 then lane 1, column-major so that lane 0 is contiguous for searches."""
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    return np.asfortranarray(keys[order])


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True for the first row of each distinct key within the batch."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((np.arange(n), keys[:, 1], keys[:, 0]))
    sk = keys[order]
    dup = np.zeros(n, dtype=bool)
    dup[1:] = (sk[1:, 0] == sk[:-1, 0]) & (sk[1:, 1] == sk[:-1, 1])
    first = np.ones(n, dtype=bool)
    first[order[dup]] = False
    return first


def contained(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``keys`` are in ``sorted_keys`` (sorted by lane 0, then lane 1)."""
    if len(sorted_keys) == 0 or len(keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    h0 = np.ascontiguousarray(sorted_keys[:, 0])
    lo = np.searchsorted(h0, keys[:, 0], side="left")
    hi = np.searchsorted(h0, keys[:, 0], side="right")
    found = np.zeros(len(keys), dtype=bool)
    one = hi - lo == 1
    idx = lo[one]
    found[one] = sorted_keys[idx, 1] == keys[one, 1]
    for i in np.flatnonzero(hi - lo > 1):  # equal first lanes: vanishingly rare
        found[i] = bool((sorted_keys[lo[i] : hi[i], 1] == keys[i, 1]).any())
    return found


def content_keys(content: np.ndarray, uid: np.ndarray) -> np.ndarray:
    """Keys of records without an event id: their content lanes mixed with the user's id."""
    return (
        KeyBuilder(len(uid), TAG_CONTENT)
        .add((content[:, 0], content[:, 1]))
        .add(int_lanes(uid))
        .keys()
    )


def record_keys(content: np.ndarray, uid: np.ndarray, event_id: pa.Array) -> np.ndarray:
    """Final keys: the event id where there is one, else the content mixed with the user."""
    keys = content_keys(content, uid)
    has_event = event_id.is_valid().to_numpy(zero_copy_only=False)
    if has_event.any():
        ev = KeyBuilder(int(has_event.sum()), TAG_EVENT)
        ev.add(string_lanes(event_id.filter(pa.array(has_event))))
        keys[has_event] = ev.keys()
    return keys
