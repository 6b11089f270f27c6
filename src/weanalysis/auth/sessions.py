"""Dashboard sessions: stateless cookies signed with HMAC-SHA256.

A session names its app and its expiry; the signature makes it unforgeable without the key, so
the server keeps no session table (nothing to migrate, nothing to clean up). The key is 32 random
bytes in ``session.key`` in the data folder (mode 0600), made once and shared by every process
that serves the folder. Deleting the file signs everybody out.

The cookie value is ``<payload>.<signature>``, both unpadded base64url; the payload is
``{"a": appid, "e": expiry (epoch seconds), "v": the app's secret epoch}`` as JSON. The epoch
changes when the app's secret is rotated (or the app is removed and added again), so every
session issued before stops working at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from weanalysis.errors import StoreDamagedError

log = logging.getLogger("weanalysis.auth")
COOKIE_NAME = "weanalysis_session"
KEY_FILE = "session.key"
KEY_BYTES = 32
SESSION_TTL_S = 12 * 3600  # a working day: a stolen cookie cannot be revoked, so keep it short
MAX_COOKIE_CHARS = 512


@dataclass(frozen=True)
class Session:
    appid: str
    expires_at: int
    epoch: str = ""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_key(data_dir: Path) -> bytes:
    """The folder's signing key, made on first use (0600; atomic even with concurrent starts)."""
    path = Path(data_dir) / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:  # a read-only folder (a replica, a mounted backup)
            log.warning(
                "cannot create %s (%s): sessions end when the server stops", path, e.strerror
            )
            return secrets.token_bytes(KEY_BYTES)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process won the race: then use its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise StoreDamagedError(
            path, f"shorter than {KEY_BYTES} bytes: delete it to make a new one"
        )
    return key


class SessionSigner:
    """Issues and checks session cookie values."""

    def __init__(self, key: bytes, ttl_s: int = SESSION_TTL_S):
        self.key = key
        self.ttl_s = ttl_s

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.key, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, appid: str, now: float | None = None, epoch: str = "") -> str:
        expires = int(now if now is not None else time.time()) + self.ttl_s
        payload = _b64(orjson.dumps({"a": appid, "e": expires, "v": epoch}))
        return f"{payload}.{self._sign(payload)}"

    def check(self, value: str | None, now: float | None = None) -> Session | None:
        """The session a cookie value names, or None if it is missing, forged or expired."""
        if not value or len(value) > MAX_COOKIE_CHARS or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        try:
            expected = self._sign(payload)
        except UnicodeEncodeError:
            return None
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return None
        try:
            data = orjson.loads(_unb64(payload))
            appid, expires, epoch = data["a"], data["e"], data.get("v", "")
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        if not isinstance(appid, str) or not isinstance(expires, int) or not isinstance(epoch, str):
            return None
        if expires <= (now if now is not None else time.time()):
            return None
        return Session(appid, expires, epoch)
