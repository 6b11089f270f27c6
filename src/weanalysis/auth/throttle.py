"""Throttling failed sign-ins per client, so that the sign-in form is no oracle for secrets."""

from __future__ import annotations

import threading
import time
from collections import deque


class FailureLimiter:
    """At most ``limit`` failures per client in any ``window_s`` seconds (a sliding window).

    Sign-in checks it before looking at the secret, so that once a client is over the limit its
    guesses are not even tried: the form is no oracle for the secret.
    """

    def __init__(self, limit: int = 10, window_s: float = 60.0, max_clients: int = 10_000):
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> float:
        """Seconds until ``client`` may try again; 0 when it may try now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            fails = self._fails.get(client)
            if fails is None:
                return 0.0
            while fails and fails[0] <= now - self.window_s:
                fails.popleft()
            if not fails:
                del self._fails[client]
                return 0.0
            if len(fails) < self.limit:
                return 0.0
            return fails[0] + self.window_s - now

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if client not in self._fails and len(self._fails) >= self.max_clients:
                self._prune(now)
            self._fails.setdefault(client, deque()).append(now)

    def _prune(self, now: float) -> None:
        for client in [c for c, f in self._fails.items() if not f or f[-1] <= now - self.window_s]:
            del self._fails[client]
        while len(self._fails) >= self.max_clients:  # still full: forget the oldest entries
            del self._fails[next(iter(self._fails))]
