"""The vectorised column paths give exactly what the per-value parsers give.

The fast paths (JSON Lines lists encoded by value or through Arrow, ids checked on the whole
buffer, epoch integers and common ISO 8601 spellings read without a parser call, JSON Lines
parsed a block of lines at a time) must never change a verdict, a reason or a stored value.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pyarrow as pa
import pytest

from weanalysis.records import columns as C
from weanalysis.records import fields, readers
from weanalysis.records.readers import parse_json_objects, read_jsonl

NOW = 1_800_000_000_000


def _reference_encode(col: list) -> tuple[list, list]:
    """The original per-row loop: values keyed by (type, value), unhashable ones alone."""
    cache: dict = {}
    distinct: list = []
    idx = []
    for v in col:
        try:
            key = (type(v), v)
            j = cache.get(key)
        except TypeError:
            key, j = None, None
        if j is None:
            j = len(distinct)
            distinct.append(v)
            if key is not None:
                cache[key] = j
        idx.append(j)
    return distinct, idx


def test_encode_lists_matches_the_per_row_loop():
    rng = random.Random(7)
    pool = [None, "a", "b", " ", "é", "\ud800", 1, 2, 2**70, True, False, 1.0, float("nan"), [1]]
    for _ in range(3000):
        kind = rng.choice(["text", "int", "mixed"])
        col = [rng.choice(pool) for _ in range(rng.randint(0, 12))]
        if kind == "text":
            col = [v if v is None or isinstance(v, str) else f"x{v}" for v in col]
        elif kind == "int":
            col = [v if v is None or type(v) is int else 5 for v in col]
        distinct, idx = C.encode(col)
        ref_distinct, ref_idx = _reference_encode(col)
        assert [(type(v), repr(v)) for v in distinct] == [(type(v), repr(v)) for v in ref_distinct]
        assert list(idx) == ref_idx


def _scalar_time(v):
    try:
        return fields.parse_time(v, NOW), None
    except fields.FieldError as e:
        return None, str(e)


def _iso_cases(rng: random.Random, k: int) -> list:
    out = []
    for _ in range(k):
        y = rng.choice([1970, 1971, 1999, 2000, 2024, 2025, 2026, 2100, 9998, 9999, 1])
        mo, d = rng.randint(0, 13), rng.choice([0, 1, 15, 28, 29, 30, 31, 32])
        h, mi, s = rng.choice([0, 8, 23, 24]), rng.choice([0, 59, 60]), rng.choice([0, 59, 60])
        frac = rng.choice(["", ".000", ".250", ".999", ".5", ".123456"])
        zone = rng.choice(["Z", "+08:00", "-05:30", "+23:59", "+24:00", "-00:60", "+0800", ""])
        sep = rng.choice(["T", "T", " "])
        out.append(f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{zone}")
    return out


def test_time_lists_match_the_scalar_parser():
    rng = random.Random(11)
    col = _iso_cases(rng, 4000)
    col += [1497139200, 1497139200000, -1, 0, 2**63 - 1, -(2**63), 2**80, True, 1.5, float("nan")]
    col += ["1497139200", " 2026-06-01T08:00:00Z", "2026-06-01T08:00:00Z ", None, "", "x", [1]]
    col += ["２０２６-06-01T08:00:00Z"]  # full-width digits are not \d for the fast path
    rng.shuffle(col)
    ms, errs = C.parse_time_column(col, NOW)
    for i, v in enumerate(col):
        want, why = _scalar_time(v)
        assert errs[i] == why, (v, errs[i], why)
        if why is None:
            assert ms[i] == (C.TIME_ABSENT if want is None else want), v


def test_iso_ms_takes_only_what_it_can_read_exactly():
    text = pa.array(["2024-02-29T23:59:59.999-00:30", "2023-02-29T00:00:00Z", None, "bad"])
    ms, ok = C.iso_ms(text)
    assert list(ok) == [True, False, False, False]
    assert ms[0] == fields.parse_time("2024-02-29T23:59:59.999-00:30", NOW)


@pytest.mark.parametrize("need_visible", [True, False])
def test_id_lists_match_the_scalar_parser(need_visible):
    parse = fields.parse_openid if need_visible else fields.parse_event_id
    ascii_ids = ["abc", "", None, "x" * 128, "y" * 129, "A-_=+/"]
    for col in (ascii_ids, ascii_ids + [" a"], ascii_ids + ["\u200b"], ascii_ids + ["é"], [1]):
        out, errs = C.parse_id_column(col, parse, fields.MAX_OPENID_CHARS, need_visible)
        for i, v in enumerate(col):
            try:
                want, why = parse(v), None
            except fields.FieldError as e:
                want, why = None, str(e)
            assert errs[i] == why, (v, errs[i], why)
            if why is None:
                assert out[i].as_py() == want


def test_ip_lists_match_the_scalar_parser():
    col = ["1.2.3.4", " 8.8.8.8\t", "\x1c9.9.9.9", "01.2.3.4", "256.1.1.1", "::1", None, "", " "]
    col += ["2001:DB8::1", "1.2.3", "\u30001.2.3.4\u3000"]
    text, v4, errs = C.parse_ip_column(col)
    for i, v in enumerate(col):
        try:
            want, why = fields.parse_ip(v), None
        except fields.FieldError as e:
            want, why = None, str(e)
        assert errs[i] == why, (v, errs[i], why)
        if why is None:
            assert text[i] == want
    assert v4[0] == 16909060 and v4[1] == 134744072


def _lines(rng: random.Random, n: int) -> bytes:
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.03:
            out.append(b"{bad json")
        elif r < 0.05:
            out.append(rng.choice([b"5", b'"text"', b"null"]))
        elif r < 0.07:
            out.append(rng.choice([b"", b"  ", b"\r"]))
        else:
            out.append(b'{"appid": "wx1", "openid": "o%d", "time": %d}' % (i, 1497139200 + i))
    return b"\n".join(out) + rng.choice([b"", b"\n", b"\r\n"])


@pytest.mark.parametrize("chunk_rows", [1, 3, 50, 1000])
def test_jsonl_blocks_make_the_chunks_of_the_line_reader(monkeypatch, chunk_rows):
    # small blocks and batches, so that their edges fall inside every kind of line run
    monkeypatch.setattr(readers, "JSONL_BLOCK_BYTES", 97)
    monkeypatch.setattr(readers, "JSONL_BATCH_LINES", 5)
    rng = random.Random(chunk_rows)
    for _ in range(20):
        data = _lines(rng, rng.randint(0, 200))
        got = list(read_jsonl(io.BufferedReader(io.BytesIO(data)), "f", chunk_rows))
        pairs = ((i, line) for i, line in enumerate(io.BytesIO(data), 1))
        want = list(parse_json_objects("f", pairs, chunk_rows))
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.columns == w.columns
            assert list(g.lines) == list(w.lines)
            assert [r.as_dict() for r in g.rejects] == [r.as_dict() for r in w.rejects]
            assert [g.text_of(i) for i in range(len(g))] == [w.text_of(i) for i in range(len(w))]


def test_none_in_place_keeps_first_appearance_order():
    distinct, idx = C._none_in_place(["a", "b", "c", None], np.array([0, 3, 1, 3, 2]))
    assert distinct == ["a", None, "b", "c"]
    assert list(idx) == [0, 1, 2, 1, 3]
