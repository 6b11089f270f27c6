"""Token buckets: a steady rate with a burst, per key (client IP, app)."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """``rate`` requests per second per key, bursts up to ``burst``; 0 disables the limit.

    Only keys whose bucket is not full are remembered: a full bucket is the same as no bucket.
    The map is swept of full buckets when it has doubled since the last sweep, or when the
    time a bucket takes to refill has passed since then; so it holds about the keys seen in the
    last ``burst / rate`` seconds (2 s by default), whatever the churn, and a limited client is
    never forgotten because many others came by.
    """

    def __init__(self, rate: float, burst: float | None = None):
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._sweep_at = 1024
        self._swept = 0.0
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
            self._buckets[key] = (tokens - 1, now)
            n = len(self._buckets)
            if n >= self._sweep_at or (n > 1024 and now - self._swept > self.burst / self.rate):
                self._sweep(now)
            return True

    def _sweep(self, now: float) -> None:
        full = [
            k
            for k, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
        self._sweep_at = max(1024, 2 * len(self._buckets))
        self._swept = now

    def __len__(self) -> int:
        return len(self._buckets)
