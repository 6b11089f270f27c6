"""String hashing reads each string's bytes word by word without an 8x copy of the data, and
gives the very keys the earlier whole-buffer construction gave (keys are stored: they must
never change)."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from weanalysis.errors import StoreDamagedError
from weanalysis.store import dedup


def _reference_words(arr: pa.Array) -> tuple[list[np.ndarray], np.ndarray]:
    """The original construction: U[p] = the 8 bytes from p, for every byte position p."""
    arr = arr.cast(pa.large_string())
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    base, top = int(offsets[0]), int(offsets[-1])
    data = (
        np.frombuffer(bufs[2], dtype=np.uint8)[base:top]
        if bufs[2] is not None and top > base
        else np.zeros(0, np.uint8)
    )
    padded = np.zeros(len(data) + 8, dtype=np.uint64)
    padded[: len(data)] = data
    u = padded[: len(data) + 1].copy()
    for i in range(1, 8):
        u |= padded[i : len(data) + 1 + i] << np.uint64(8 * i)
    starts = offsets[:-1] - base
    lens = offsets[1:] - offsets[:-1]
    words = []
    for k in range(-(-int(lens.max(initial=0)) // 8)):
        left = np.clip(lens - 8 * k, 0, 8).astype(np.uint64)
        mask = np.where(
            left >= 8,
            np.uint64(0xFFFFFFFFFFFFFFFF),
            (np.uint64(1) << (left * np.uint64(8))) - np.uint64(1),
        )
        words.append(u[np.minimum(starts + 8 * k, len(u) - 1)] & mask)
    return words, lens


def test_words_match_the_reference():
    rng = random.Random(3)
    alphabet = "ab01-_é中\u200b "
    for _ in range(300):
        n = rng.randint(0, 30)
        values = [
            None if rng.random() < 0.1 else "".join(rng.choices(alphabet, k=rng.randint(0, 40)))
            for _ in range(n)
        ]
        arr = pa.array(values, pa.string())
        if n > 2 and rng.random() < 0.5:
            arr = arr.slice(1, n - 2)  # an offset into shared buffers
        got, got_lens = dedup._words(arr)
        want, want_lens = _reference_words(arr)
        assert list(got_lens) == list(want_lens)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == np.uint64 and list(g) == list(w)


def test_event_keys_are_stable():
    keys = dedup.event_keys(pa.array(["ev-1", None, "中文-事件-0123456789abcdef"]))
    assert keys[1].tolist() == [0, 0]
    again = dedup.event_keys(pa.array(["x", "ev-1", "中文-事件-0123456789abcdef"]))
    assert keys[0].tolist() == again[1].tolist() and keys[2].tolist() == again[2].tolist()


def _random_keys(rng, n: int) -> np.ndarray:
    """Keys with many ties in lane 0 (few values in each part) and lane 1's 24 bits."""
    top = rng.integers(0, dedup.PARTS, size=n).astype(np.uint64) << np.uint64(64 - dedup.PART_BITS)
    k0 = top | rng.integers(0, 4, size=n).astype(np.uint64)
    return np.stack([k0, rng.integers(0, 3, size=n).astype(np.uint64)], axis=1)


def _sorted_model(keys: np.ndarray) -> np.ndarray:
    """What a sorted key set is: the keys by lane 0, ties in the order given."""
    order = np.argsort(keys[:, 0], kind="stable")
    return keys[order]


def test_key_set_merge_is_the_sorted_concatenation_and_empties_its_inputs():
    rng = np.random.default_rng(5)
    for n_old, n_new in ((0, 0), (0, 5), (7, 0), (1000, 300), (300, 1000), (5000, 5000)):
        a, b = _random_keys(rng, n_old), _random_keys(rng, n_new)
        older, newer = dedup.KeySet.of(a), dedup.KeySet.of(b)
        assert np.array_equal(older.array(), _sorted_model(a))
        got = older.merge(newer)
        assert len(older) == 0 and len(newer) == 0  # released part by part
        assert got.array().dtype == np.uint64
        # ties in lane 0: the older set's keys first, as in a stable sort of the concatenation
        assert np.array_equal(got.array(), _sorted_model(np.concatenate([a, b])))
        assert all(p.dtype == np.int64 for p in got.k0)
        assert all(p.dtype == np.uint32 for p in got.k1)


def test_key_set_contains_and_without_agree_with_a_python_set(tmp_path):
    rng = np.random.default_rng(11)
    stored = _random_keys(rng, 3000)
    asked = np.concatenate([_random_keys(rng, 2000), stored[:50]])
    keys = dedup.KeySet.of(stored)
    model = {tuple(k) for k in stored.tolist()}
    want = np.array([tuple(k) in model for k in asked.tolist()])
    assert want.any() and not want.all()
    assert np.array_equal(keys.contains(asked), want)
    # a stored key's lane 1 beyond 24 bits (as the key builder never makes) still matches
    wide = stored[:5].copy()
    wide[:, 1] |= np.uint64(1 << 40)
    assert keys.contains(wide).all()
    gone = dedup.KeySet.of(asked[:1000])
    gone_model = {tuple(k) for k in asked[:1000].tolist()}
    left = keys.without(gone).array()
    assert sorted(map(tuple, left.tolist())) == sorted(
        k for k in map(tuple, stored.tolist()) if k not in gone_model
    )
    # saved and loaded: the same set, the same file columns as format 4's key segments
    keys.save(tmp_path / "k.parquet")
    back = dedup.KeySet.load(tmp_path / "k.parquet")
    assert np.array_equal(back.array(), keys.array())
    t = pq.read_table(tmp_path / "k.parquet")
    assert t.schema.field("k0").type == pa.int64() and t.schema.field("k1").type == pa.uint32()
    assert np.array_equal(back.contains(asked), want)


def test_key_set_of_real_keys_finds_every_stored_key_and_no_other():
    events = pa.array([f"ev-{i}" for i in range(20_000)])
    keys = dedup.event_keys(events)
    half = dedup.KeySet.of(keys[:10_000]).merge(dedup.KeySet.of(keys[10_000:15_000]))
    assert sum(len(p) > 0 for p in half.k0) == dedup.PARTS  # spread over every part
    assert half.contains(keys[:15_000]).all()
    assert not half.contains(keys[15_000:]).any()


def test_a_damaged_key_segment_is_named(tmp_path):
    path = tmp_path / "k.parquet"
    pq.write_table(pa.table({"k0": pa.array([1.5])}), path)
    with pytest.raises(StoreDamagedError, match="not a key segment"):
        dedup.KeySet.load(path)
    with pytest.raises(StoreDamagedError, match="missing"):
        dedup.KeySet.load(tmp_path / "absent.parquet")


def test_key_set_union_of_none_one_and_several():
    rng = np.random.default_rng(8)
    parts = [_random_keys(rng, n) for n in (40, 0, 300, 7)]
    got = dedup.KeySet.union(dedup.KeySet.of(p) for p in parts)
    assert np.array_equal(got.array(), _sorted_model(np.concatenate(parts)))
    assert len(dedup.KeySet.union([])) == 0
    one = dedup.KeySet.of(parts[0])
    assert dedup.KeySet.union([one]) is one
