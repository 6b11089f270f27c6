"""Access tokens, as WeChat issues them: random, bound to one app, valid for a fixed time.

Two pools that never invalidate each other (as in WeChat):

- ``token`` (``/cgi-bin/token``): every call issues a new token; earlier tokens of the pool stay
  valid for at most ``OVERLAP_S`` more seconds, so callers in flight can finish;
- ``stable`` (``/cgi-bin/stable_token``): the same token while it is valid; ``force_refresh``
  issues a new one and revokes the old one at once.

Only a SHA-256 of each token is stored (in the catalog database), so tokens survive a restart
and a leaked database does not leak usable tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from enum import Enum

from weanalysis.store.catalog import Catalog

DEFAULT_TTL_S = 7200
OVERLAP_S = 300
TOKEN_BYTES = 96  # 128 URL-safe characters, like WeChat's long tokens
# Expired tokens are kept a day, so that their use is told apart (42001) from garbage (40001).
KEEP_EXPIRED_S = 86_400
POOL_TOKEN, POOL_STABLE = "token", "stable"
# Checks are remembered this long, so a busy server does not hash and query per request; a
# change made through this process (re-issue, force_refresh) drops them at once.
CHECK_CACHE_S = 1.0


class TokenState(Enum):
    VALID = "valid"
    UNKNOWN = "unknown"  # never issued, revoked, or replaced: 40001
    EXPIRED = "expired"  # 42001


@dataclass(frozen=True)
class Issued:
    token: str
    expires_in: int


@dataclass(frozen=True)
class Check:
    state: TokenState
    appid: str | None = None


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenService:
    def __init__(self, catalog: Catalog, ttl_s: int = DEFAULT_TTL_S, clock=time.time):
        if ttl_s < 1:
            raise ValueError("token TTL must be at least 1 second")
        self.catalog = catalog
        self.ttl_s = ttl_s
        self.clock = clock
        # one connection shared by the server's threads: serialise its use
        self._lock = threading.Lock()
        self._checked: dict[str, tuple[float, str | None, float, bool]] = {}
        self._generation = catalog.generation

    def _insert(self, appid: str, pool: str, now: float) -> Issued:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self.catalog.db.execute(
            "INSERT INTO tokens (token_hash, appid, pool, issued_at, expires_at, plain) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                _hash(token),
                appid,
                pool,
                now,
                now + self.ttl_s,
                token if pool == POOL_STABLE else None,
            ),
        )
        return Issued(token, self.ttl_s)

    def issue(self, appid: str) -> Issued:
        """A new token of the ``token`` pool; older ones of the pool expire within OVERLAP_S."""
        now = self.clock()
        self._checked.clear()
        with self._lock, self.catalog.transaction() as db:
            db.execute(
                "UPDATE tokens SET expires_at = MIN(expires_at, ?) "
                "WHERE appid = ? AND pool = ? AND revoked = 0 AND expires_at > ?",
                (now + OVERLAP_S, appid, POOL_TOKEN, now),
            )
            db.execute("DELETE FROM tokens WHERE expires_at < ?", (now - KEEP_EXPIRED_S,))
            return self._insert(appid, POOL_TOKEN, now)

    def stable(self, appid: str, force_refresh: bool = False) -> Issued:
        """The app's stable token: the same while valid; a new one (old revoked) when forced."""
        now = self.clock()
        self._checked.clear()
        with self._lock, self.catalog.transaction() as db:
            row = None
            if not force_refresh:
                row = db.execute(
                    "SELECT plain, expires_at FROM tokens WHERE appid = ? AND pool = ? "
                    "AND revoked = 0 AND expires_at > ? ORDER BY issued_at DESC LIMIT 1",
                    (appid, POOL_STABLE, now),
                ).fetchone()
            if row is not None:
                return Issued(row[0], max(1, int(row[1] - now)))
            # the replaced token is invalid at once; it no longer needs its plain text
            db.execute(
                "UPDATE tokens SET revoked = (expires_at > ?) OR revoked, plain = NULL "
                "WHERE appid = ? AND pool = ?",
                (now, appid, POOL_STABLE),
            )
            return self._insert(appid, POOL_STABLE, now)

    def check(self, token: str) -> Check:
        now = self.clock()
        gen = self.catalog.refresh()
        if gen != self._generation:  # a secret rotated or an app removed (by any process)
            self._generation = gen
            self._checked.clear()
        hit = self._checked.get(token)
        if hit is not None and now - hit[0] < CHECK_CACHE_S:
            _, appid, expires_at, revoked = hit
        else:
            with self._lock:
                row = self.catalog.db.execute(
                    "SELECT appid, expires_at, revoked FROM tokens WHERE token_hash = ?",
                    (_hash(token),),
                ).fetchone()
            appid, expires_at, revoked = row if row is not None else (None, 0.0, True)
            if len(self._checked) > 10_000:
                self._checked.clear()
            self._checked[token] = (now, appid, expires_at, bool(revoked))
        if appid is None or revoked:
            return Check(TokenState.UNKNOWN)
        if expires_at <= now:
            return Check(TokenState.EXPIRED, appid)
        return Check(TokenState.VALID, appid)
