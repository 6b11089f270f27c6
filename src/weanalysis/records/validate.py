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


def _location_column(chunk: RawChunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Explicit locations, parsed once per distinct (province, city) pair."""
    distinct, idx = C.encode_pairs(chunk.columns["province"], chunk.columns["city"])
    vals, errs = C._parse_all(distinct, lambda pair: _location(*pair), None)
    n = len(chunk)
    pid = np.zeros(n, dtype=np.int32)
    cid = np.zeros(n, dtype=np.int32)
    table = np.array([v if v is not None else (0, 0) for v in vals], dtype=np.int32).reshape(-1, 2)
    if n:
        pid[:] = table[idx, 0]
        cid[:] = table[idx, 1]
    return pid, cid, errs[idx]


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
        checks: list[tuple[str, np.ndarray]] = []

        appid, e = C.map_distinct(cols["appid"], self._appid)
        checks.append(("appid", e))
        checks.append(("appid", _missing(appid == None)))  # noqa: E711
        openid, e = C.parse_id_column(
            cols["openid"], fields.parse_openid, fields.MAX_OPENID_CHARS, True
        )
        checks.append(("openid", e))
        checks.append(
            ("openid", _missing(np.asarray(openid.is_null().to_numpy(zero_copy_only=False))))
        )
        time_ms, e = C.parse_time_column(cols["time"], self.now_ms)
        checks.append(("time", e))
        if self.kind == VISIT:
            checks.append(("time", _missing(time_ms == TIME_ABSENT)))
        event_id, e = C.parse_id_column(
            cols["event_id"], fields.parse_event_id, fields.MAX_EVENT_ID_CHARS, False
        )
        checks.append(("event_id", e))
        gender, e = C.map_distinct(cols["gender"], fields.parse_gender)
        checks.append(("gender", e))
        age, e = C.map_distinct(cols["age"], fields.parse_age)
        checks.append(("age", e))

        if self.kind == VISIT:
            ip, ipv4, e = C.parse_ip_column(cols["ip"])
            checks.append(("ip", e))
            province, city, e = _location_column(chunk)
            checks.append(("", e))  # the reason already names province or city
            platform, e = C.map_distinct(cols["platform"], _platform)
            checks.append(("platform", e))
            brand, e = C.Coded.parse(cols["brand"], fields.parse_brand)
            checks.append(("brand", e))
            model, e = C.Coded.parse(cols["model"], fields.parse_model)
            checks.append(("model", e))
            ua, e = C.Coded.parse(cols["user_agent"], fields.parse_user_agent)
            checks.append(("user_agent", e))
        else:
            ip = np.full(n, None, dtype=object)
            brand = model = ua = C.Coded(np.array([None], dtype=object), np.zeros(n, np.int64))
            ipv4 = np.zeros(n, dtype=np.uint32)
            province = city = np.zeros(n, dtype=np.int32)
            platform = np.zeros(n, dtype=object)

        reason = np.full(n, None, dtype=object)
        field = np.full(n, None, dtype=object)
        for name, errs in checks:
            todo = (reason == None) & (errs != None)  # noqa: E711
            if todo.any():
                prefix = f"{name}: " if name else ""
                reason[todo] = [prefix + str(m) for m in errs[todo]]
                field[todo] = [name or str(m).split(":", 1)[0] for m in errs[todo]]
        bad = reason != None  # noqa: E711
        rejects = list(chunk.rejects)
        for i in np.flatnonzero(bad):
            rejects.append(
                Reject(
                    chunk.source,
                    int(chunk.lines[i]),
                    reason[i],
                    chunk.text_of(int(i)),
                    field[i],
                    int(i),
                )
            )
        rejects.sort(key=lambda r: r.line)
        keep = np.flatnonzero(~bad)
        take = pa.array(keep, type=pa.int64())
        valid = ValidChunk(
            kind=self.kind,
            source=chunk.source,
            lines=chunk.lines[keep],
            text_of=chunk.text_of,
            raw_index=keep,
            appid=appid[keep],
            openid=openid.take(take),
            time_ms=time_ms[keep],
            event_id=event_id.take(take),
            ip=ip[keep],
            ipv4=ipv4[keep],
            province=province[keep],
            city=city[keep],
            platform=C.int_codes(platform[keep], 0, np.int8),
            brand=brand.take(keep),
            model=model.take(keep),
            user_agent=ua.take(keep),
            gender=C.int_codes(gender[keep], 0, np.int8),
            age=C.int_codes(age[keep], -1, np.int16),
        )
        return valid, rejects


def _missing(mask: np.ndarray) -> np.ndarray:
    errs = np.full(len(mask), None, dtype=object)
    errs[mask] = "missing"
    return errs
