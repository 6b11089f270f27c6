"""Token buckets: a steady rate with a burst, per key (client IP, app)."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """``rate`` requests per second per key, bursts up to ``burst``; 0 disables the limit."""

    def __init__(self, rate: float, burst: float | None = None, max_keys: int = 100_000):
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, 2 * rate)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return False
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                self._buckets.clear()  # a flood of keys: forget them all rather than grow
            self._buckets[key] = (tokens - 1, now)
            return True
