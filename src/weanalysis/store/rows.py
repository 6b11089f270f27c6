"""Accepted rows as the derived structures need them, from a batch or from raw segments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from weanalysis.dims import MAX_AGE, age_bucket, regions
from weanalysis.records.columns import Coded

TIME_ABSENT = np.iinfo(np.int64).min
UNDATED_DAY = -1


@dataclass
class Derived:
    """Accepted rows in storage order, as the derived structures need them."""

    uid: np.ndarray  # uint32
    time_ms: np.ndarray  # int64, TIME_ABSENT when undated
    day: np.ndarray  # int32, UNDATED_DAY when undated
    gender: np.ndarray  # int8, 0 unknown
    age_bucket: np.ndarray  # int8, 0 unknown
    visit: bool
    loc: np.ndarray | None = None  # int16 (visits)
    plat: np.ndarray | None = None  # int8 (visits)
    dev: np.ndarray | None = None  # int32 device codes (visits)

    @property
    def dated(self) -> np.ndarray:
        return self.time_ms != TIME_ABSENT


REBUILD_ROWS = 1 << 20
RAW_COMMON = ("uid", "time_ms", "day", "gender", "age")
RAW_VISIT = ("province_id", "city_id", "platform", "device")
_LOC_KEYS = regions.LOC_PROVINCE.astype(np.int64) * 1_000_000 + regions.LOC_CITY
_LOC_ORDER = np.argsort(_LOC_KEYS)
_AGE_BUCKETS = np.array([age_bucket(a) for a in range(MAX_AGE + 1)], dtype=np.int8)


def rows_of_raw(
    rb: pa.RecordBatch, visit: bool, device_codes: Callable[[Coded], np.ndarray]
) -> Derived:
    """A batch of a raw segment as the derived structures need it (what a commit derives)."""
    col = {n: rb.column(n) for n in rb.schema.names}
    age = col["age"].fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    bucket = np.where(age >= 0, _AGE_BUCKETS[np.clip(age, 0, MAX_AGE)], 0).astype(np.int8)
    rows = Derived(
        uid=col["uid"].to_numpy(zero_copy_only=False).astype(np.uint32),
        time_ms=col["time_ms"].fill_null(TIME_ABSENT).to_numpy(zero_copy_only=False),
        day=col["day"].fill_null(UNDATED_DAY).to_numpy(zero_copy_only=False).astype(np.int32),
        gender=col["gender"].fill_null(0).to_numpy(zero_copy_only=False).astype(np.int8),
        age_bucket=bucket,
        visit=visit,
    )
    if visit:
        keys = col["province_id"].to_numpy(zero_copy_only=False).astype(np.int64) * 1_000_000 + col[
            "city_id"
        ].to_numpy(zero_copy_only=False)
        at = _LOC_ORDER[np.searchsorted(_LOC_KEYS, keys, sorter=_LOC_ORDER)]
        rows.loc = at.astype(np.int16)
        rows.plat = col["platform"].fill_null(0).to_numpy(zero_copy_only=False).astype(np.int8)
        rows.dev = device_codes(_coded(col["device"]))
    return rows


def _coded(arr: pa.Array) -> Coded:
    """A (dictionary or plain) string column as distinct values plus indices (None: absent)."""
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    values = np.array([*arr.dictionary.to_pylist(), None], dtype=object)
    idx = arr.indices.fill_null(len(values) - 1).to_numpy(zero_copy_only=False).astype(np.int64)
    return Coded(values, idx)


def derived_names(m: dict) -> list[str]:
    """The derived files a manifest names, in this format (runs) or format 2 (one name each)."""

    def names(v) -> list[str]:
        if not v:
            return []
        return [v] if isinstance(v, str) else [r[0] for r in v]

    out = [n for v in m["days"].values() for n in names(v)]
    out += names(m["first_day"])
    out += [n for v in m["persons"].values() for n in names(v)]
    out += names(m["devices"])
    return out
