"""String hashing reads each string's bytes word by word without an 8x copy of the data, and
gives the very keys the earlier whole-buffer construction gave (keys are stored: they must
never change)."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa

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


def test_merge_keys_is_sort_keys_of_the_concatenation():
    rng = np.random.default_rng(5)
    for n_old, n_new in ((0, 0), (0, 5), (7, 0), (1000, 300), (300, 1000)):
        older = dedup.sort_keys(rng.integers(0, 40, size=(n_old, 2)).astype(np.uint64))
        newer = dedup.sort_keys(rng.integers(0, 40, size=(n_new, 2)).astype(np.uint64))
        want = dedup.sort_keys(np.concatenate([older, newer]))  # many ties in lane 0
        got = dedup.merge_keys(older, newer)
        assert got.flags.f_contiguous and got.dtype == np.uint64
        assert np.array_equal(got, want)
