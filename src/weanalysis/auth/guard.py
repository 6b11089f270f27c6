"""Checking an app's secret, for every route that takes one (``/cgi-bin/token``,
``/cgi-bin/stable_token``, the dashboard's sign-in), throttled against guessing.

- Failed checks are counted per client IP and per appid (:class:`FailureThrottle`); once either
  is over its limit, the answer is "throttled" *before* anything is hashed, so guesses are not
  even tried and a flood costs no CPU.
- The hash (a 100k-round PBKDF2, ~60 ms of CPU) runs on one dedicated thread, never on the event
  loop and never on the thread pool that computes portraits: a guessing flood can use at most
  one core, and kept answers stay fast. When too many checks already wait for that thread, the
  answer is "throttled" too.
- An unknown appid costs the same hash as a wrong secret (against a dummy), so the time of the
  answer does not tell which appids exist.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum

from weanalysis.auth.throttle import FailureThrottle
from weanalysis.records.fields import APPID_RE
from weanalysis.store import Catalog

# checks waiting for the hashing thread beyond this are refused as throttled (each waits ~60 ms)
MAX_WAITING = 32
# an appid may fail this many times more than one client IP: guesses spread over many addresses
# are still bounded, while one noisy address does not lock the app's owner out
APP_LIMIT_FACTOR = 5


class Verdict(Enum):
    OK = "ok"
    THROTTLED = "throttled"
    UNKNOWN_APP = "unknown_app"
    WRONG_SECRET = "wrong_secret"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    retry_after: float = 0.0


class SecretGuard:
    def __init__(self, catalog: Catalog, failures: int, window_s: float):
        self.catalog = catalog
        self.by_ip = FailureThrottle(failures, window_s)
        self.by_app = FailureThrottle(failures * APP_LIMIT_FACTOR, window_s)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="secret-check")
        self._waiting = 0
        self._lock = threading.Lock()

    def _check(self, appid: str, secret: str) -> Verdict:
        # a malformed appid cannot exist, but it costs the same as any other guess
        known = APPID_RE.match(appid) is not None and self.catalog.get(appid) is not None
        ok = self.catalog.check_secret(appid if known else "", secret)
        if not known:
            return Verdict.UNKNOWN_APP
        return Verdict.OK if ok else Verdict.WRONG_SECRET

    async def verify(self, client: str, appid: str, secret: str) -> Outcome:
        """Checks ``secret`` for ``appid`` asked by ``client`` (its IP, or "-")."""
        ip_key, app_key = f"ip:{client}", f"app:{appid[:64]}"
        wait = max(self.by_ip.retry_after(ip_key), self.by_app.retry_after(app_key))
        if wait > 0:
            return Outcome(Verdict.THROTTLED, wait)
        with self._lock:
            if self._waiting >= MAX_WAITING:
                return Outcome(Verdict.THROTTLED, 1.0)
            self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            verdict = await loop.run_in_executor(self._pool, self._check, appid, secret)
        finally:
            with self._lock:
                self._waiting -= 1
        if verdict is not Verdict.OK:
            self.by_ip.failed(ip_key)
            self.by_app.failed(app_key)
        return Outcome(verdict)
