"""Days in an app's time zone: a record's day is its local date, as days since 1970-01-01."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

MS_PER_DAY = 86_400_000
# UTC offsets change only at instants aligned to 15 minutes in every zone of the tz database,
# so one offset per distinct 15-minute bucket is exact, and a batch has few distinct buckets.
BUCKET_MS = 15 * 60 * 1000
EPOCH = date(1970, 1, 1)


def local_days(time_ms: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """UTC epoch milliseconds -> local day numbers (int32) in ``tz``."""
    if len(time_ms) == 0:
        return np.zeros(0, dtype=np.int32)
    buckets = time_ms // BUCKET_MS
    uniq, inverse = np.unique(buckets, return_inverse=True)
    offsets = np.array(
        [
            int(
                datetime.fromtimestamp(int(b) * BUCKET_MS / 1000, UTC)
                .astimezone(tz)
                .utcoffset()
                .total_seconds()
            )
            * 1000
            for b in uniq
        ],
        dtype=np.int64,
    )
    return ((time_ms + offsets[inverse]) // MS_PER_DAY).astype(np.int32)


def day_number(d: date) -> int:
    return (d - EPOCH).days


def day_date(n: int) -> date:
    return EPOCH + timedelta(days=int(n))


def today(tz: ZoneInfo) -> int:
    return day_number(datetime.now(tz).date())
