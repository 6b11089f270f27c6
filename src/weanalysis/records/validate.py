"""Validate raw chunks at the edge into typed, canonical columns (SPEC.md section 2).

A row with any invalid field is rejected as a whole, with the first reason found (fields are
checked in a fixed order); the other rows go on. Absent values are coded: 0 for ids,
-1 for age, ``TIME_ABSENT`` for time, ``None`` for text.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from weanalysis.dims import catalog, regions
from weanalysis.records import columns as C
from weanalysis.records import fields
from weanalysis.records.readers import RawChunk, Reject

VISIT, PROFILE = "visit", "profile"
KINDS = (VISIT, PROFILE)
PLATFORM_DEVTOOLS = -1  # a visit from the WeChat developer tools: filtered, never stored
TIME_ABSENT = C.TIME_ABSENT


@dataclass
class ValidChunk:
    """Accepted rows of one kind, canonical and typed; every array has one entry per row."""

    kind: str
    source: str
    lines: np.ndarray  # int64, line number in the source
    text_of: Callable[[int], str]  # original text by position in the *raw* chunk
    raw_index: np.ndarray  # int64, position of each row in the raw chunk
    appid: np.ndarray  # object (str)
    openid: pa.Array  # string
    time_ms: np.ndarray  # int64 UTC epoch ms; TIME_ABSENT for undated profiles
    event_id: pa.Array  # string, null when absent
    ip: np.ndarray  # object: canonical text or None
    ipv4: np.ndarray  # uint32, 0 unless an IPv4 address
    province: np.ndarray  # int32 explicit province id, 0 absent
    city: np.ndarray  # int32 explicit city id, 0 absent
    platform: np.ndarray  # int8: 0 absent, 1..3, PLATFORM_DEVTOOLS
    brand: C.Coded
    model: C.Coded
    user_agent: C.Coded
    gender: np.ndarray  # int8: 0 absent, 1 男, 2 女
    age: np.ndarray  # int16: -1 absent
    apps: C.Coded | None = None  # appid again, coded (for grouping rows by app)

    def __len__(self) -> int:
        return len(self.lines)


def _location(province_value: object, city_value: object) -> tuple[int, int] | None:
    """Explicit province/city -> (province id, city id); raises FieldError with a reason."""
    try:
        pid = regions.parse_province(province_value)
    except ValueError as e:
        raise fields.FieldError(f"province: {e}") from None
    try:
        pc_ = regions.parse_city(city_value, pid)
    except ValueError as e:
        raise fields.FieldError(f"city: {e}") from None
    if pc_ is not None:
        return pc_
    # a municipality (and 香港, 澳门, 台湾, 海外) is its own single city
    return (pid, regions.implied_city(pid)) if pid else None


def _platform(value: object) -> int | None:
    try:
        p = catalog.parse_platform(value)
    except (TypeError, ValueError) as e:
        raise fields.FieldError(str(e)) from None
    if p == "devtools":
        return PLATFORM_DEVTOOLS
    return p or None


def _location_column(chunk: RawChunk) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Explicit locations, parsed once per distinct (province, city) pair: (province id, city
    id) per row, the errors per distinct pair and each row's pair."""
    distinct, idx = C.encode_pairs(chunk.columns["province"], chunk.columns["city"])
    vals, errs = C._parse_all(distinct, lambda pair: _location(*pair), None)
    table = np.array([v if v is not None else (0, 0) for v in vals], dtype=np.int32).reshape(-1, 2)
    if not len(chunk):
        return np.zeros(0, np.int32), np.zeros(0, np.int32), errs, idx
    return table[idx, 0], table[idx, 1], errs, idx


class _Verdicts:
    """The first failing check of each row, checks taken in a fixed order.

    Checks come as boolean masks (one entry per row) with a function giving the reasons of
    some rows, so the common case, a chunk without faults, touches no Python object per row.
    """

    def __init__(self, n: int):
        self.bad = np.zeros(n, dtype=bool)
        self.found: dict[int, tuple[str, str]] = {}  # row -> (reason, field)

    def add(self, name: str, mask: np.ndarray, reasons: Callable[[np.ndarray], object]) -> None:
        todo = mask & ~self.bad
        if not todo.any():
            return
        rows = np.flatnonzero(todo)
        prefix = f"{name}: " if name else ""
        for r, m in zip(rows.tolist(), reasons(rows), strict=True):
            self.found[r] = (prefix + str(m), name or str(m).split(":", 1)[0])
        self.bad |= todo

    def rowwise(self, name: str, errs: np.ndarray) -> None:
        """Errors as an object array with one entry (None or the reason) per row."""
        self.add(name, errs != None, lambda rows: errs[rows])  # noqa: E711

    def coded(self, name: str, errs: np.ndarray, idx: np.ndarray) -> None:
        """Errors per distinct value, and each row's value."""
        has = errs != None  # noqa: E711
        if has.any():
            self.add(name, has[idx], lambda rows: errs[idx[rows]])

    def missing(self, name: str, mask: np.ndarray) -> None:
        self.add(name, mask, lambda rows: ["missing"] * len(rows))


class Validator:
    """Validates raw chunks of one kind against the registered apps."""

    def __init__(self, kind: str, registered: Callable[[str], bool], now_ms: int | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self.kind = kind
        self.registered = registered
        self.now_ms = int(_time.time() * 1000) if now_ms is None else now_ms

    def _appid(self, value: object) -> str | None:
        appid = fields.parse_appid(value)
        if appid is not None and not self.registered(appid):
            raise fields.FieldError(f"app {appid!r} is not registered (weanalysis app add)")
        return appid

    def validate(self, chunk: RawChunk) -> tuple[ValidChunk, list[Reject]]:
        cols = chunk.columns
        n = len(chunk)
        v = _Verdicts(n)

        app_vals, e, app_idx = C.map_codes(cols["appid"], self._appid)
        v.coded("appid", e, app_idx)
        v.missing("appid", (app_vals == None)[app_idx])  # noqa: E711
        openid, e = C.parse_id_column(
            cols["openid"], fields.parse_openid, fields.MAX_OPENID_CHARS, True
        )
        v.rowwise("openid", e)
        if openid.null_count:
            v.missing("openid", np.asarray(openid.is_null().to_numpy(zero_copy_only=False)))
        time_ms, e = C.parse_time_column(cols["time"], self.now_ms)
        v.rowwise("time", e)
        if self.kind == VISIT:
            v.missing("time", time_ms == TIME_ABSENT)
        event_id, e = C.parse_id_column(
            cols["event_id"], fields.parse_event_id, fields.MAX_EVENT_ID_CHARS, False
        )
        v.rowwise("event_id", e)
        gender, e, gender_idx = C.map_codes(cols["gender"], fields.parse_gender)
        v.coded("gender", e, gender_idx)
        age, e, age_idx = C.map_codes(cols["age"], fields.parse_age)
        v.coded("age", e, age_idx)

        if self.kind == VISIT:
            ip, ipv4, e = C.parse_ip_column(cols["ip"])
            v.rowwise("ip", e)
            province, city, e, pair_idx = _location_column(chunk)
            v.coded("", e, pair_idx)  # the reason already names province or city
            platform, e, platform_idx = C.map_codes(cols["platform"], _platform)
            v.coded("platform", e, platform_idx)
            brand, e = C.Coded.parse_distinct(cols["brand"], fields.parse_brand)
            v.coded("brand", e, brand.idx)
            model, e = C.Coded.parse_distinct(cols["model"], fields.parse_model)
            v.coded("model", e, model.idx)
            ua, e = C.Coded.parse_distinct(cols["user_agent"], fields.parse_user_agent)
            v.coded("user_agent", e, ua.idx)
        else:
            ip = np.full(n, None, dtype=object)
            brand = model = ua = C.Coded(np.array([None], dtype=object), np.zeros(n, np.int64))
            ipv4 = np.zeros(n, dtype=np.uint32)
            province = city = np.zeros(n, dtype=np.int32)
            platform, platform_idx = np.zeros(1, dtype=object), np.zeros(n, np.int64)

        rejects = list(chunk.rejects)
        for i, (reason, field) in sorted(v.found.items()):
            rejects.append(
                Reject(chunk.source, int(chunk.lines[i]), reason, chunk.text_of(i), field, i)
            )
        rejects.sort(key=lambda r: r.line)
        if v.found:
            keep = np.flatnonzero(~v.bad)
            take = pa.array(keep, type=pa.int64())
            openid, event_id = openid.take(take), event_id.take(take)
        else:  # nothing rejected: no copies of the text columns
            keep = np.arange(n, dtype=np.int64)
        app_idx = app_idx[keep]
        valid = ValidChunk(
            kind=self.kind,
            source=chunk.source,
            lines=chunk.lines[keep],
            text_of=chunk.text_of,
            raw_index=keep,
            appid=app_vals[app_idx],
            openid=openid,
            time_ms=time_ms[keep],
            event_id=event_id,
            ip=ip[keep],
            ipv4=ipv4[keep],
            province=province[keep],
            city=city[keep],
            platform=C.int_codes(platform, 0, np.int8)[platform_idx[keep]],
            brand=brand.take(keep),
            model=model.take(keep),
            user_agent=ua.take(keep),
            gender=C.int_codes(gender, 0, np.int8)[gender_idx[keep]],
            age=C.int_codes(age, -1, np.int16)[age_idx[keep]],
            apps=C.Coded(app_vals, app_idx),
        )
        return valid, rejects
