"""Validation at the edge: every accepted spelling, every reject reason, every file format."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from weanalysis.records import fields
from weanalysis.records.readers import read_csv, read_jsonl, read_parquet
from weanalysis.records.validate import PLATFORM_DEVTOOLS, TIME_ABSENT, Validator

T = 1497139200000  # 2017-06-11T08:00:00+08:00
NOW = 1700000000000


@pytest.mark.parametrize(
    "value",
    [
        "2017-06-11T08:00:00+08:00",
        "2017-06-11T00:00:00Z",
        "2017-06-11T00:00:00.000+00:00",
        "2017-06-11 08:00:00+08:00",
        1497139200,
        1497139200000,
        1497139200.0,
        "1497139200",
        "1497139200000",
    ],
)
def test_time_spellings(value):
    assert fields.parse_time(value, NOW) == T


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2017-06-11T08:00:00", "has no UTC offset"),
        ("2017-13-11T08:00:00+08:00", "cannot parse"),
        ("yesterday", "cannot parse"),
        (True, "not boolean"),
        ([1], "not array"),
        (-5, "before 2000"),
        (0, "before 2000"),
        ("1999-12-31T23:59:59Z", "before 2000"),
        (NOW + 2 * 86_400_000, "in the future"),
        (float("inf"), "not a finite number"),
    ],
)
def test_time_rejects(value, reason):
    with pytest.raises(fields.FieldError, match=reason):
        fields.parse_time(value, NOW)


@pytest.mark.parametrize(
    ("value", "gender"),
    [
        (0, None),
        (1, 1),
        (2, 2),
        ("0", None),
        ("1", 1),
        ("2", 2),
        ("未知", None),
        ("男", 1),
        ("女", 2),
        ("unknown", None),
        ("male", 1),
        ("Female", 2),
        (1.0, 1),
        (None, None),
        ("", None),
    ],
)
def test_gender_spellings(value, gender):
    assert fields.parse_gender(value) == gender


@pytest.mark.parametrize("value", ["man", 3, "3", True, 1.5, {"a": 1}])
def test_gender_rejects(value):
    with pytest.raises(fields.FieldError):
        fields.parse_gender(value)


@pytest.mark.parametrize(
    ("value", "age"), [(0, 0), (150, 150), ("33", 33), (33.0, 33), (None, None)]
)
def test_age_spellings(value, age):
    assert fields.parse_age(value) == age


@pytest.mark.parametrize("value", [-1, 151, "abc", 33.5, True, "1e2"])
def test_age_rejects(value):
    with pytest.raises(fields.FieldError):
        fields.parse_age(value)


def test_openid_rules():
    assert fields.parse_openid("o" * 128) == "o" * 128
    assert fields.parse_openid(" keeps spaces ") == " keeps spaces "
    assert fields.parse_openid("") is None
    for bad in ("o" * 129, "a\tb", "a\x00", 12345):
        with pytest.raises(fields.FieldError):
            fields.parse_openid(bad)


def _jsonl(*rows) -> bytes:
    return b"".join(
        (r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()) + b"\n"
        for r in rows
    )


def _validate(kind, data: bytes, fmt="jsonl", apps=("wx1",)):
    if fmt == "jsonl":
        chunks = list(read_jsonl(io.BytesIO(data), "f", 1000))
    else:
        chunks = list(read_csv(io.BytesIO(data), "f", 1000))
    v = Validator(kind, lambda a: a in apps, now_ms=NOW)
    valid, rejects = v.validate(chunks[0])
    return valid, rejects


def test_every_reject_reason_is_reported_and_the_rest_stored():
    base = {"appid": "wx1", "openid": "u", "time": T}
    data = _jsonl(
        base,  # line 1: fine
        b"{not json",  # 2
        b"[1, 2]",  # 3
        {**base, "openid": ""},  # 4
        {**base, "openid": None},  # 5
        {k: v for k, v in base.items() if k != "time"},  # 6
        {**base, "time": "2017-06-11"},  # 7
        {**base, "age": 151},  # 8
        {**base, "gender": "man"},  # 9
        {**base, "appid": "wx2"},  # 10
        {**base, "appid": "bad appid!"},  # 11
        {**base, "province": "火星"},  # 12
        {**base, "city": "杭州", "province": "广东"},  # 13
        {**base, "ip": "999.1.1.1"},  # 14
        {**base, "event_id": 7},  # 15
        {**base, "openid": 42},  # 16
        {**base, "platform": True},  # 17
        {**base, "brand": "x" * 65},  # 18
        b"",  # 19: a blank line is skipped, not rejected
        {**base, "openid": "u2"},  # 20: fine
    )
    valid, rejects = _validate("visit", data)
    assert list(valid.lines) == [1, 20]
    got = {r.line: (r.kind, r.reason) for r in rejects}
    assert sorted(got) == list(range(2, 19))
    assert got[2][0] == "json" and got[2][1].startswith("malformed JSON")
    assert got[3] == ("json", "not a JSON object")
    assert got[4] == ("openid", "openid: missing")
    assert got[5] == ("openid", "openid: missing")
    assert got[6] == ("time", "time: missing")
    assert got[7][0] == "time" and "no UTC offset" in got[7][1]
    assert got[8] == ("age", "age: 151 is outside 0-150")
    assert got[9][0] == "gender"
    assert got[10] == ("appid", "appid: app 'wx2' is not registered (weanalysis app add)")
    assert got[11][0] == "appid"
    assert got[12][0] == "province"
    assert got[13][0] == "city" and "not in" in got[13][1]
    assert got[14][0] == "ip"
    assert got[15] == ("event_id", "event_id: must be a string, not int")
    assert got[16] == ("openid", "openid: must be a string, not int")
    assert got[17][0] == "platform"
    assert got[18] == ("brand", "brand: longer than 64 characters")
    assert all(r.text for r in rejects)


def test_visit_fields_canonical():
    rows = [
        {"appid": "wx1", "openid": "a", "time": T, "province": "广东", "city": "广州市"},
        {"appid": "wx1", "openid": "b", "time": T, "province": "440000", "city": 4403},
        {"appid": "wx1", "openid": "c", "time": T, "city": "延边"},
        {"appid": "wx1", "openid": "d", "time": T, "province": 11},
        {"appid": "wx1", "openid": "e", "time": T, "platform": "devtools"},
        {"appid": "wx1", "openid": "f", "time": T, "platform": "iPhone", "ip": "1.2.3.4"},
        {"appid": "wx1", "openid": "g", "time": T, "ip": "240e::1", "gender": "女", "age": "18"},
    ]
    valid, rejects = _validate("visit", _jsonl(*rows))
    assert rejects == []
    assert list(valid.province) == [44, 44, 22, 11, 0, 0, 0]
    assert list(valid.city) == [4401, 4403, 2224, 1100, 0, 0, 0]
    assert list(valid.platform) == [0, 0, 0, 0, PLATFORM_DEVTOOLS, 1, 0]
    assert list(valid.ip) == [None, None, None, None, None, "1.2.3.4", "240e::1"]
    assert list(valid.ipv4) == [0, 0, 0, 0, 0, (1 << 24) | (2 << 16) | (3 << 8) | 4, 0]
    assert list(valid.gender) == [0, 0, 0, 0, 0, 0, 2]
    assert list(valid.age) == [-1, -1, -1, -1, -1, -1, 18]


def test_profiles_may_be_undated():
    data = _jsonl(
        {"appid": "wx1", "openid": "a", "gender": "male"},
        {"appid": "wx1", "openid": "b", "time": T, "age": 30},
    )
    valid, rejects = _validate("profile", data)
    assert rejects == []
    assert list(valid.time_ms) == [TIME_ABSENT, T]


def test_csv_header_line_numbers_and_empty_cells():
    data = (
        "\ufeffappid,openid,time,province,gender,age\n"
        "wx1,a,2017-06-11T08:00:00+08:00,广东省,男,\n"
        "\n"
        "wx1,b,1497139200,,,abc\n"
        "wx1,c,1497139200,,2,40,extra\n"
        'wx1,"d, quoted",1497139200000,44,,\n'
    ).encode()
    valid, rejects = _validate("visit", data, fmt="csv")
    assert list(valid.lines) == [2, 6]
    assert valid.openid.to_pylist() == ["a", "d, quoted"]
    assert list(valid.province) == [44, 44]
    assert {r.line: r.kind for r in rejects} == {4: "age", 5: "csv"}


def test_parquet_typed_columns(tmp_path):
    path = tmp_path / "v.parquet"
    table = pa.table(
        {
            "appid": ["wx1", "wx1", "wx1", "wx1"],
            "openid": ["a", "b", "c", None],
            "time": pa.array([T, T, T, T], pa.timestamp("ms", tz="UTC")),
            "age": pa.array([20, None, 200, 30], pa.int32()),
            "gender": pa.array([1, 2, None, 0], pa.int8()),
            "unknown_column": [1, 2, 3, 4],
        }
    )
    pq.write_table(table, path)
    chunk = next(read_parquet(str(path), 1000, str(path)))
    valid, rejects = Validator("visit", lambda a: True, now_ms=NOW).validate(chunk)
    assert list(valid.time_ms) == [T, T]
    assert list(valid.age) == [20, -1]
    assert {r.line: r.reason for r in rejects} == {
        3: "age: 200 is outside 0-150",
        4: "openid: missing",
    }
    assert json.loads(rejects[0].text)["age"] == 200


def test_parquet_naive_timestamp_is_rejected(tmp_path):
    path = tmp_path / "v.parquet"
    pq.write_table(
        pa.table({"appid": ["wx1"], "openid": ["a"], "time": pa.array([T], pa.timestamp("ms"))}),
        path,
    )
    chunk = next(read_parquet(str(path), 1000, str(path)))
    valid, rejects = Validator("visit", lambda a: True, now_ms=NOW).validate(chunk)
    assert len(valid) == 0 and "no time zone" in rejects[0].reason


def test_parquet_string_times_fast_and_slow_paths(tmp_path):
    path = tmp_path / "v.parquet"
    times = ["2017-06-11T08:00:00+08:00", "2017-06-11T00:00:00.5Z", "1497139200", "bad"]
    pq.write_table(pa.table({"appid": ["wx1"] * 4, "openid": list("abcd"), "time": times}), path)
    chunk = next(read_parquet(str(path), 1000, str(path)))
    valid, rejects = Validator("visit", lambda a: True, now_ms=NOW).validate(chunk)
    assert list(valid.time_ms) == [T, T + 500, T]
    assert [r.line for r in rejects] == [4]


def test_ip_column_vectorised_matches_scalar():
    ips = ["1.2.3.4", " 8.8.8.8 ", "01.2.3.4", "256.1.1.1", "::ffff:1.2.3.4", "2001:db8::1", None]
    from weanalysis.records.columns import parse_ip_column

    text, v4, errs = parse_ip_column(pa.array(ips))
    assert list(text[:2]) == ["1.2.3.4", "8.8.8.8"]
    assert list(v4[:2]) == [16909060, 134744072]
    assert errs[2] is not None and errs[3] is not None
    assert text[4] == "::ffff:102:304" and v4[4] == 0
    assert text[5] == "2001:db8::1"
    assert text[6] is None and errs[6] is None
    assert np.all(errs[[0, 1, 4, 5, 6]] == None)  # noqa: E711


def test_parquet_iso_strings_with_fractions_and_without_offsets(tmp_path):
    path = tmp_path / "v.parquet"
    times = [
        "2017-06-11T08:00:00.250+08:00",
        "2017-06-11",
        "2017-06-11T08:00:00",
        "2017-06-11 00:00:00.5Z",
    ]
    pq.write_table(pa.table({"appid": ["wx1"] * 4, "openid": list("abcd"), "time": times}), path)
    chunk = next(read_parquet(str(path), 1000, str(path)))
    valid, rejects = Validator("visit", lambda a: True, now_ms=NOW).validate(chunk)
    assert list(valid.time_ms) == [T + 250, T + 500]
    assert [r.line for r in rejects] == [2, 3]


def test_parquet_integer_times_with_nulls_are_undated_profiles(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(
        pa.table(
            {
                "appid": ["wx1"] * 2,
                "openid": ["a", "b"],
                "time": pa.array([T, None], pa.int64()),
                "gender": [1, 2],
            }
        ),
        path,
    )
    chunk = next(read_parquet(str(path), 1000, str(path)))
    valid, rejects = Validator("profile", lambda a: True, now_ms=NOW).validate(chunk)
    assert rejects == [] and list(valid.time_ms) == [T, TIME_ABSENT]
