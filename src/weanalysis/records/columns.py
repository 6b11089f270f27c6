"""Columnar drivers: apply the scalar parsers of :mod:`fields` to whole columns, fast.

A column arrives either as a pyarrow array (Parquet, typed and fast) or as a Python list
(JSON Lines, CSV: any mix of types). Low-cardinality fields are parsed once per distinct value;
the few high-cardinality ones (time, openid, ip) have vectorised paths with a scalar fallback.
Each driver returns ``(values, errors)``: ``errors`` is an object array holding ``None`` or
the reason for each row.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from weanalysis.records import fields

Column = pa.Array | pa.ChunkedArray | list
ParseFn = Callable[[Any], Any]

# only text with a time of day and an explicit offset may take the fast ISO cast
ISO_OFFSET_RE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$"
IPV4_RE = r"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$"


def _no_errors(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


def _combine(col: Column) -> pa.Array | list:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks()
    return col


_NUMBER_TYPES = frozenset({int, float, bool})
_PLAIN_TYPES = _NUMBER_TYPES | {str, type(None)}


def text_array(col: list) -> pa.Array | None:
    """A list of str and None as an Arrow string array; None for any other value in it (or
    text Arrow cannot hold, such as a lone surrogate)."""
    if not set(map(type, col)) <= {str, type(None)}:
        return None
    try:
        return pa.array(col, type=pa.string())
    except (pa.ArrowException, UnicodeEncodeError):
        return None


def _plain_array(col: list, types: set[type]) -> pa.Array | None:
    """A list of only text (or only integers) and None as an Arrow array, else None."""
    kinds = types - {type(None)}
    if kinds not in ({str}, {int}):
        return None
    try:
        return pa.array(col, type=pa.string() if kinds == {str} else pa.int64())
    except (pa.ArrowException, UnicodeEncodeError, OverflowError):
        return None


def _none_in_place(distinct: list, idx: np.ndarray) -> tuple[list, np.ndarray]:
    """Arrow's encoding of a list (absent last) in the list's own order: each distinct value,
    absent included, where it first appears."""
    absent = len(distinct) - 1
    hits = np.flatnonzero(idx == absent)
    if not len(hits):
        return distinct[:-1], idx
    k = int(idx[: hits[0]].max(initial=-1)) + 1  # values seen before the first absent one
    distinct = distinct[:k] + [None] + distinct[k:-1]
    return distinct, np.where(idx == absent, k, idx + (idx >= k))


def encode(col: Column) -> tuple[list, np.ndarray]:
    """(distinct values, index of each row's value); works for arrow arrays and lists."""
    col = _combine(col)
    if isinstance(col, pa.Array):
        if pa.types.is_null(col.type):
            return [None], np.zeros(len(col), dtype=np.int64)
        enc = col.dictionary_encode()
        distinct = enc.dictionary.to_pylist() + [None]
        idx = pc.fill_null(enc.indices, len(distinct) - 1).to_numpy(zero_copy_only=False)
        return distinct, idx.astype(np.int64)
    types = set(map(type, col))
    arrow = _plain_array(col, types)
    if arrow is not None:
        distinct, idx = encode(arrow)
        return _none_in_place(distinct, idx)
    if types <= _PLAIN_TYPES and len(types & _NUMBER_TYPES) <= 1:
        # no two values of different types can be equal (1 == 1.0 == True): key by value
        distinct = list(dict.fromkeys(col))  # first appearance order, as below
        index = {v: i for i, v in enumerate(distinct)}
        return distinct, np.fromiter(map(index.__getitem__, col), np.int64, count=len(col))
    cache: dict[tuple[type, Any], int] = {}
    distinct = []
    idx = np.empty(len(col), dtype=np.int64)
    for i, v in enumerate(col):
        try:
            key = (type(v), v)
            j = cache.get(key)
        except TypeError:  # unhashable (an object or array): a value of its own
            key, j = None, None
        if j is None:
            j = len(distinct)
            distinct.append(v)
            if key is not None:
                cache[key] = j
        idx[i] = j
    return distinct, idx


def encode_pairs(a: Column, b: Column) -> tuple[list[tuple], np.ndarray]:
    """Distinct (a, b) pairs of two columns and the index of each row's pair."""
    da, ia = encode(a)
    db, ib = encode(b)
    combined = ia * len(db) + ib
    uniq, inverse = np.unique(combined, return_inverse=True)
    distinct = [(da[k // len(db)], db[k % len(db)]) for k in uniq.tolist()]
    return distinct, inverse.reshape(-1)


def map_distinct(col: Column, parse: ParseFn, absent: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``parse`` once per distinct value; returns (object values, object errors).

    Absent results (``None``) are replaced by ``absent``.
    """
    vals, errs, idx = map_codes(col, parse, absent)
    return vals[idx], errs[idx]


def map_codes(
    col: Column, parse: ParseFn, absent: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`map_distinct` without the per-row objects: (values and errors per distinct
    value, index of each row's value)."""
    distinct, idx = encode(col)
    vals, errs = _parse_all(distinct, parse, absent)
    return vals, errs, idx


def _parse_all(values: list, parse: ParseFn, absent: Any) -> tuple[np.ndarray, np.ndarray]:
    out = np.full(len(values), absent, dtype=object)
    errs = np.full(len(values), None, dtype=object)
    for i, v in enumerate(values):
        try:
            r = parse(v)
        except fields.FieldError as e:
            errs[i] = str(e)
        else:
            if r is not None:
                out[i] = r
    return out, errs


def map_scalar(col: Column, parse: ParseFn) -> tuple[list, np.ndarray]:
    """Apply ``parse`` to every row (high-cardinality fields); values as a list."""
    if isinstance(col, pa.Array | pa.ChunkedArray):
        col = col.to_pylist()
    out: list = [None] * len(col)
    errs = _no_errors(len(col))
    for i, v in enumerate(col):
        try:
            out[i] = parse(v)
        except fields.FieldError as e:
            errs[i] = str(e)
    return out, errs


def int_codes(values: np.ndarray, absent: int, dtype: type) -> np.ndarray:
    """An object array of ints/None (from :func:`map_distinct`) as a typed array."""
    mask = values == None  # noqa: E711 - elementwise comparison on an object array
    return np.where(mask, absent, values).astype(dtype)


# --- time -----------------------------------------------------------------------------------


def parse_time_column(col: Column, now_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Times as int64 UTC epoch ms; absent -> ``TIME_ABSENT``."""
    col = _combine(col)
    n = len(col)
    out = np.full(n, TIME_ABSENT, dtype=np.int64)
    if isinstance(col, pa.Array) and n:
        t = col.type
        if pa.types.is_null(t):
            return out, _no_errors(n)
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            # nulls filled first: an integer column with nulls would come out as float NaN
            nums = pc.fill_null(col, 0).to_numpy(zero_copy_only=False)
            if pa.types.is_floating(t):
                valid &= np.isfinite(nums)
                nums = np.where(valid, nums, 0.0)
            ms = _epoch_ms_vec(nums)
            out[valid] = ms[valid]
            return out, _time_range_errors(out, valid, now_ms)
        if pa.types.is_timestamp(t):
            if t.tz is None:
                errs = _no_errors(n)
                errs[col.is_valid().to_numpy(zero_copy_only=False)] = (
                    "Parquet timestamp has no time zone (store it as UTC-adjusted)"
                )
                return out, errs
            ms = pc.cast(col, pa.timestamp("ms", tz="UTC")).cast(pa.int64())
            valid = ms.is_valid().to_numpy(zero_copy_only=False)
            out[valid] = ms.to_numpy(zero_copy_only=False)[valid]
            return out, _time_range_errors(out, valid, now_ms)
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            fast = pc.strptime(col, format="%Y-%m-%dT%H:%M:%S%z", unit="ms", error_is_null=True)
            ok = fast.is_valid().to_numpy(zero_copy_only=False)
            out[ok] = fast.cast(pa.int64()).to_numpy(zero_copy_only=False)[ok]
            errs = _time_range_errors(out, ok, now_ms)
            rest = np.flatnonzero(~ok)
            iso = rest[
                pc.fill_null(
                    pc.match_substring_regex(col.take(pa.array(rest)), ISO_OFFSET_RE), False
                ).to_numpy(zero_copy_only=False)
            ]
            if len(iso):  # e.g. fractions of seconds: Arrow's ISO 8601 cast, all or nothing
                try:
                    cast = pc.cast(col.take(pa.array(iso)), pa.timestamp("ms", tz="UTC"))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    cast = None
                if cast is not None and cast.null_count == 0:
                    out[iso] = cast.cast(pa.int64()).to_numpy(zero_copy_only=False)
                    ok[iso] = True
                    errs = _time_range_errors(out, ok, now_ms)
                    rest = np.flatnonzero(~ok)
            if len(rest):
                vals, rerrs = map_scalar(
                    col.take(pa.array(rest)), lambda v: fields.parse_time(v, now_ms)
                )
                out[rest] = [TIME_ABSENT if v is None else v for v in vals]
                errs[rest] = rerrs
            return out, errs
        col = col.to_pylist()
    errs = _no_errors(n)
    rest = np.arange(n)
    ints = np.flatnonzero(np.fromiter(map(operator.is_, map(type, col), repeat(int)), bool, n))
    if len(ints):  # JSON epoch numbers (exactly int: not bool), as the scalar parser reads them
        try:
            nums = np.array([col[i] for i in ints.tolist()], dtype=np.int64)
        except OverflowError:
            pass  # beyond 64 bits: the scalar parser says why
        else:
            out[ints] = _epoch_ms_vec(nums)
            errs[ints] = _time_range_errors(out[ints], np.ones(len(ints), bool), now_ms)
            rest = np.flatnonzero(
                np.fromiter(map(operator.is_not, map(type, col), repeat(int)), bool, n)
            )
    if len(rest):  # ISO 8601 text in its most common spelling: read straight from the bytes
        texts = rest[np.fromiter(map(operator.is_, map(type, col), repeat(str)), bool, n)[rest]]
        text = text_array([col[i] for i in texts.tolist()])
        if text is not None:
            ms, ok = iso_ms(text)
            if ok.any():
                done = texts[ok]
                out[done] = ms[ok]
                errs[done] = _time_range_errors(ms[ok], np.ones(len(done), bool), now_ms)
                left = np.ones(n, dtype=bool)
                left[done] = False
                rest = rest[left[rest]]
    if len(rest):
        vals, rerrs = map_scalar(
            [col[i] for i in rest.tolist()], lambda v: fields.parse_time(v, now_ms)
        )
        out[rest] = [TIME_ABSENT if v is None else v for v in vals]
        errs[rest] = rerrs
    return out, errs


TIME_ABSENT = np.iinfo(np.int64).min
# "2026-06-01T08:30:00Z", "2026-06-01T08:30:00.250+08:00": what the vectorised reading takes;
# every other spelling goes to the scalar parser
ISO_COMMON_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?(Z|[+-]\d{2}:\d{2})$"
ISO_COMMON_WIDTH = 29
DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def iso_ms(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """UTC epoch ms of ISO 8601 times spelled as :data:`ISO_COMMON_RE` says, exactly as
    :func:`fields.parse_time` reads them; (ms, ok): ``ok`` False for any other text, and for
    dates or offsets that do not exist (the scalar parser says why)."""
    n = len(text)
    ms = np.zeros(n, dtype=np.int64)
    ok = pc.fill_null(pc.match_substring_regex(text, ISO_COMMON_RE), False)
    ok = ok.to_numpy(zero_copy_only=False).copy()
    if not ok.any():
        return ms, ok
    padded = pc.utf8_rpad(text.filter(pa.array(ok)), ISO_COMMON_WIDTH, " ").cast(pa.large_string())
    bufs = padded.buffers()
    m = len(padded)
    start = int(np.frombuffer(bufs[1], dtype=np.int64, count=1, offset=padded.offset * 8)[0])
    raw = np.frombuffer(bufs[2], dtype=np.uint8)[start : start + m * ISO_COMMON_WIDTH]
    b = raw.reshape(m, ISO_COMMON_WIDTH).astype(np.int64)
    d = b - ord("0")

    def num(*cols: int) -> np.ndarray:
        v = np.zeros(m, dtype=np.int64)
        for c in cols:
            v = v * 10 + d[:, c]
        return v

    year, month, day = num(0, 1, 2, 3), num(5, 6), num(8, 9)
    hour, minute, second = num(11, 12), num(14, 15), num(17, 18)
    frac = b[:, 19] == ord(".")
    milli = np.where(frac, num(20, 21, 22), 0)
    z = np.where(frac, 23, 19)
    rows = np.arange(m)
    sign = np.where(b[rows, z] == ord("-"), -1, 1)
    utc = b[rows, z] == ord("Z")
    off_h = np.where(utc, 0, d[rows, np.minimum(z + 1, 28)] * 10 + d[rows, np.minimum(z + 2, 28)])
    off_m = np.where(utc, 0, d[rows, np.minimum(z + 4, 28)] * 10 + d[rows, np.minimum(z + 5, 28)])
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    dim = DAYS_IN_MONTH[np.where(month_ok, month, 1)] + ((month == 2) & leap)
    good = (
        (year >= 1971)
        & (year <= 9998)
        & month_ok
        & (day >= 1)
        & (day <= dim)
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 59)
        & (off_h <= 23)
        & (off_m <= 59)
    )
    # days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    local = days * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1000 + milli
    where = np.flatnonzero(ok)
    ms[where] = local - sign * (off_h * 3_600_000 + off_m * 60_000)
    ok[where] = good
    return ms, ok


def _epoch_ms_vec(nums: np.ndarray) -> np.ndarray:
    nums = nums.astype(np.float64) if nums.dtype.kind == "f" else nums
    secs = np.abs(nums) < fields.EPOCH_MS_THRESHOLD
    if nums.dtype.kind == "f":
        return np.where(secs, np.round(nums * 1000), np.round(nums)).astype(np.int64)
    return np.where(secs, nums.astype(np.int64) * 1000, nums.astype(np.int64))


def _time_range_errors(ms: np.ndarray, valid: np.ndarray, now_ms: int) -> np.ndarray:
    errs = _no_errors(len(ms))
    errs[valid & (ms < fields.MIN_TIME_MS)] = fields.TOO_EARLY
    errs[valid & (ms > now_ms + fields.MAX_FUTURE_MS)] = "more than a day in the future"
    return errs


# --- openid / event_id ------------------------------------------------------------------------


def parse_id_column(
    col: Column, parse: ParseFn, limit: int, need_visible: bool
) -> tuple[pa.Array, np.ndarray]:
    """openid/event_id: validated strings as a pyarrow string array (nulls where absent).

    The same rules as ``parse`` (the per-value parser, used for other column types): at most
    ``limit`` characters, no control or bidi-override characters, and with ``need_visible`` a
    visible character.
    """
    col = _combine(col)
    if isinstance(col, pa.Array) and (
        pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    ):
        n = len(col)
        errs = _no_errors(n)
        lengths = _printable_ascii_lengths(col)
        if lengths is not None:  # no control, space or invisible character can be in there
            errs[lengths > limit] = f"longer than {limit} characters"
            empty = lengths == 0
            if not empty.any():
                return col.cast(pa.string()), errs
            out = pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), col.cast(pa.string()))
            return out, errs
        lengths = pc.fill_null(pc.utf8_length(col), 0).to_numpy(zero_copy_only=False)
        errs[lengths > limit] = f"longer than {limit} characters"
        empty = lengths == 0
        if need_visible:
            visible = pc.fill_null(pc.match_substring_regex(col, fields.VISIBLE_RE2), True)
            errs[~visible.to_numpy(zero_copy_only=False) & ~empty] = fields.INVISIBLE_REASON
        unsafe = pc.fill_null(pc.match_substring_regex(col, fields.UNSAFE_RE2), False)
        errs[unsafe.to_numpy(zero_copy_only=False)] = fields.UNSAFE_REASON
        out = pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), col.cast(pa.string()))
        return out, errs
    if isinstance(col, pa.Array):
        if pa.types.is_null(col.type):
            return pa.nulls(len(col), pa.string()), _no_errors(len(col))
        col = col.to_pylist()
    else:  # JSON Lines, CSV: printable ASCII text takes the same checks on the whole buffer
        text = text_array(col)
        if text is not None and _printable_ascii_lengths(text) is not None:
            return parse_id_column(text, parse, limit, need_visible)
    vals, errs = map_scalar(col, parse)
    return pa.array(vals, type=pa.string()), errs


def _printable_ascii_lengths(col: pa.Array) -> np.ndarray | None:
    """Each string's length (0 when null) if every byte of the array's text is printable,
    non-space ASCII (``!`` to ``~``: one byte a character, each visible and safe); else None.

    Whole-buffer checks instead of per-row regexes: the common case of ids (hex digits,
    base64) costs two passes over the bytes.
    """
    n = len(col)
    bufs = col.buffers()
    width = np.int64 if pa.types.is_large_string(col.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=width, count=n + 1, offset=col.offset * width().itemsize)
    base, top = int(offsets[0]), int(offsets[-1])
    if top > base:
        data = np.frombuffer(bufs[2], dtype=np.uint8)[base:top]
        if data.min() < 0x21 or data.max() > 0x7E:
            return None
    lengths = np.diff(offsets).astype(np.int64)
    if col.null_count:
        lengths[~col.is_valid().to_numpy(zero_copy_only=False)] = 0
    return lengths


# --- ip --------------------------------------------------------------------------------------


def parse_ip_column(col: Column) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (ip text as object array with None, IPv4 as uint32 (0 if not v4), errors)."""
    col = _combine(col)
    if isinstance(col, list):
        text = text_array(col)
        col = col if text is None else text
    n = len(col)
    v4 = np.zeros(n, dtype=np.uint32)
    if isinstance(col, pa.Array) and (
        pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    ):
        stripped = pc.utf8_trim_whitespace(col)
        is4 = pc.fill_null(pc.match_substring_regex(stripped, IPV4_RE), False)
        is4np = is4.to_numpy(zero_copy_only=False)
        if is4np.any():
            parts = pc.split_pattern(pc.filter(stripped, is4), ".")
            flat = pc.cast(pc.list_flatten(parts), pa.uint32()).to_numpy().reshape(-1, 4)
            v4[is4np] = (flat[:, 0] << 24) | (flat[:, 1] << 16) | (flat[:, 2] << 8) | flat[:, 3]
        text = stripped.to_numpy(zero_copy_only=False).astype(object)
        errs = _no_errors(n)
        rest = np.flatnonzero(~is4np)
        if len(rest):
            vals, rerrs = map_distinct(stripped.take(pa.array(rest)), fields.parse_ip)
            text[rest] = vals
            errs[rest] = rerrs
        return text, v4, errs
    vals, errs = map_distinct(col, fields.parse_ip)
    for i, s in enumerate(vals):
        if s is not None and ":" not in s:
            a, b, c, d = (int(x) for x in s.split("."))
            v4[i] = (a << 24) | (b << 16) | (c << 8) | d
    return vals, v4, errs


class Coded:
    """A low-cardinality column as distinct values plus one index per row.

    Downstream steps (device names, idempotency keys, storage) work per distinct value and
    take by index, instead of touching a Python object per row.
    """

    __slots__ = ("values", "idx")

    def __init__(self, values: np.ndarray, idx: np.ndarray):
        self.values = values  # object array; None for absent
        self.idx = idx  # int64, one per row

    @classmethod
    def parse(cls, col: Column, parse: ParseFn) -> tuple[Coded, np.ndarray]:
        """Parse once per distinct value; returns (coded canonical values, per-row errors)."""
        coded, errs = cls.parse_distinct(col, parse)
        return coded, errs[coded.idx]

    @classmethod
    def parse_distinct(cls, col: Column, parse: ParseFn) -> tuple[Coded, np.ndarray]:
        """Like :meth:`parse`, with the errors per distinct value (``values``' order)."""
        vals, errs, idx = map_codes(col, parse)
        return cls(vals, idx), errs

    def __len__(self) -> int:
        return len(self.idx)

    def take(self, rows: np.ndarray) -> Coded:
        return Coded(self.values, self.idx[rows])

    def rows(self) -> np.ndarray:
        """One object per row (slow path, for small batches and tests)."""
        return self.values[self.idx] if len(self.values) else np.full(len(self.idx), None, object)

    def arrow(self) -> pa.Array:
        """A dictionary-encoded string array (nulls where absent)."""
        if len(self.values) == 0:
            return pa.nulls(len(self.idx), pa.string())
        # Parquet cannot store a null inside a dictionary: absent rows get a null index instead.
        vals = pa.array(["" if v is None else v for v in self.values], pa.string())
        absent = np.array([v is None for v in self.values], dtype=bool)[self.idx]
        indices = pa.array(self.idx.astype(np.int32), mask=absent)
        return pa.DictionaryArray.from_arrays(indices, vals)
