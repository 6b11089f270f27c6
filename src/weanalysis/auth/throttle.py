"""Counting failures per key (client IP, appid) in time buckets that expire by age.

A key is over the limit when it has ``limit`` or more failures in the last ``window_s`` seconds
(counted in ``buckets`` slices of the window, so the window slides in steps of one slice).
Whole buckets are dropped once they are older than the window: the state is only the keys that
failed recently, however many other keys come by, so no client is ever forgotten early (there is
no "evict the oldest when full"). Its size is bounded by the failures themselves, which each cost
a secret hash and are throttled.
"""

from __future__ import annotations

import threading
import time
from collections import Counter


class FailureThrottle:
    def __init__(self, limit: int, window_s: float, buckets: int = 6, clock=time.monotonic):
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.slice_s = window_s / buckets
        self.buckets = buckets
        self.clock = clock
        self._counts: dict[int, Counter[str]] = {}  # slice number -> failures per key
        self._lock = threading.Lock()

    def _expire(self, now_slice: int) -> None:
        for s in [s for s in self._counts if s <= now_slice - self.buckets]:
            del self._counts[s]

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        now = self.clock()
        now_slice = int(now // self.slice_s)
        with self._lock:
            self._expire(now_slice)
            live = sorted((s, c[key]) for s, c in self._counts.items() if c.get(key))
        total = sum(n for _, n in live)
        if total < self.limit:
            return 0.0
        # the oldest slices expire first: wait until enough of them are gone
        for s, n in live:
            total -= n
            if total < self.limit:
                return max(0.001, (s + self.buckets) * self.slice_s - now)
        return self.window_s  # unreachable: total reaches 0

    def failed(self, key: str) -> None:
        now_slice = int(self.clock() // self.slice_s)
        with self._lock:
            self._expire(now_slice)
            self._counts.setdefault(now_slice, Counter())[key] += 1

    def keys(self) -> int:
        """Keys with a failure in the window (for tests and metrics)."""
        with self._lock:
            return len(set().union(*self._counts.values())) if self._counts else 0
