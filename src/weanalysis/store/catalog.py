"""The app registry: appid, salted secret hash, time zone. SQLite in WAL mode.

SQLite gives one writer and any number of readers across processes, which is exactly what the
CLI (writer) and a running server (reader) need for this small table.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from weanalysis.errors import InputError, StoreDamagedError, StoreReadOnlyError
from weanalysis.records import fields

DEFAULT_TIMEZONE = "Asia/Shanghai"
MIN_SECRET_CHARS = 8
MAX_SECRET_CHARS = 128
PBKDF2_ROUNDS = 100_000

MIGRATIONS = [
    # 1: apps
    """
    CREATE TABLE apps (
        appid TEXT PRIMARY KEY,
        secret_salt BLOB NOT NULL,
        secret_hash BLOB NOT NULL,
        timezone TEXT NOT NULL,
        created_at REAL NOT NULL
    )
    """,
    # 2: access tokens, looked up by SHA-256; pool is "token" or "stable". Only the current stable
    # token is kept in plain text, because stable_token must hand out the same one after a restart.
    """
    CREATE TABLE tokens (
        token_hash BLOB PRIMARY KEY,
        appid TEXT NOT NULL REFERENCES apps (appid),
        pool TEXT NOT NULL,
        issued_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0,
        plain TEXT
    );
    CREATE INDEX tokens_app_pool ON tokens (appid, pool, expires_at)
    """,
    # 3: small groups withheld from every output of the app (issue 10); 0 withholds nothing
    """
    ALTER TABLE apps ADD COLUMN min_users INTEGER NOT NULL DEFAULT 0
    """,
    # 4: the secret's epoch: a random value made anew by every rotation, bound into dashboard
    # sessions, so that rotating the secret (or removing and adding the app again) signs every
    # old session out at once
    """
    ALTER TABLE apps ADD COLUMN secret_epoch TEXT NOT NULL DEFAULT ''
    """,
    # 5: retention (issue 11): records of days before today - N are deleted; NULL keeps all
    """
    ALTER TABLE apps ADD COLUMN retention_days INTEGER
    """,
]
MAX_MIN_USERS = 1_000_000
MAX_RETENTION_DAYS = 36_500
APP_COLUMNS = "appid, timezone, created_at, secret_epoch, retention_days"


class CatalogError(InputError):
    """A request about apps that cannot be done; the message says why."""


@dataclass(frozen=True)
class App:
    appid: str
    timezone: str
    created_at: float
    epoch: str = ""
    retention_days: int | None = None  # None: every record is kept

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _hash_secret(secret: str, salt: bytes) -> bytes:
    # surrogatepass: a secret with a lone surrogate (never a registered one) just does not match
    return hashlib.pbkdf2_hmac(
        "sha256", secret.encode("utf-8", "surrogatepass"), salt, PBKDF2_ROUNDS
    )


# An unknown appid is checked against this, so that it costs the same time as a wrong secret
# (the answer's timing does not tell which appids exist).
_DUMMY_SALT = secrets.token_bytes(16)
_DUMMY_HASH = _hash_secret(secrets.token_urlsafe(16), _DUMMY_SALT)


def check_secret_text(secret: str) -> None:
    if not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS or not secret.isprintable():
        raise CatalogError(
            f"the secret must be {MIN_SECRET_CHARS}-{MAX_SECRET_CHARS} printable characters"
        )


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CatalogError(
            f"unknown time zone {name!r} (use an IANA name like Asia/Shanghai)"
        ) from None
    return name


def _connect(target: str | Path, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(
        target, timeout=30, isolation_level=None, check_same_thread=False, uri=uri
    )


def _raise_if_read_only(e: sqlite3.OperationalError, path: Path) -> None:
    if getattr(e, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
        raise StoreReadOnlyError(path.parent, "change the app registry or tokens") from None


class Catalog:
    """The app registry. On a folder this process cannot write (a read-only replica, a mounted
    backup) it opens read-only: reads work, writes raise :class:`StoreReadOnlyError`."""

    def __init__(self, path: Path):
        self.path = path
        self.read_only = False
        self._cache: dict[str, App | None] = {}
        self._data_version: int | None = None  # SQLite's data_version, read on first refresh
        self.generation = 0  # bumped whenever another process changed the catalog
        if path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            self.db = (
                self._open_read_only()
            )  # access() says EROFS on a read-only mount, even to root
            return
        try:
            self.db = _connect(path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.OperationalError as e:
            if getattr(e, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise
            if not path.exists():
                raise StoreReadOnlyError(path.parent, f"create {path.name} ({e})") from None
            self.db = self._open_read_only()
        except sqlite3.DatabaseError as e:  # not a database: garbage, zeroed, truncated header
            raise StoreDamagedError(path, str(e)) from None

    def _open_read_only(self) -> sqlite3.Connection:
        """Read-only; ``immutable`` when the WAL's index cannot be created beside the file."""
        self.read_only = True
        base = f"file:{quote(str(self.path.absolute()))}?mode=ro"
        for uri in (base, base + "&immutable=1"):
            db = _connect(uri, uri=True)
            try:
                (version,) = db.execute("PRAGMA user_version").fetchone()
            except sqlite3.OperationalError:
                db.close()
                continue
            except sqlite3.DatabaseError as e:
                db.close()
                raise StoreDamagedError(self.path, str(e)) from None
            if version != len(MIGRATIONS):
                db.close()
                raise StoreReadOnlyError(
                    self.path.parent, "upgrade its catalog (open it once where it is writable)"
                )
            return db
        raise StoreReadOnlyError(self.path.parent, f"read {self.path.name}")

    def _read_data_version(self) -> int:
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    def refresh(self) -> int:
        """Drops what this process remembers once another process changed the catalog (an app
        removed, a secret rotated, a time zone set); returns :attr:`generation`. One cheap
        query (SQLite's ``data_version``)."""
        v = self._read_data_version()
        if self._data_version is None:
            self._data_version = v
        elif v != self._data_version:
            self._data_version = v
            self._cache.clear()
            self.generation += 1
        return self.generation

    def _changed(self) -> None:
        """This process changed the catalog: forget what it remembers."""
        self._cache.clear()
        self.generation += 1

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken at once (BEGIN IMMEDIATE), rolled back on any error."""
        if self.read_only:
            raise StoreReadOnlyError(self.path.parent, "change the app registry or tokens")
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            _raise_if_read_only(e, self.path)
            raise
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        with self.transaction() as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            for i, ddl in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in ddl.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {i}")

    def close(self) -> None:
        self.db.close()

    def add_app(self, appid: str, secret: str, timezone: str = DEFAULT_TIMEZONE) -> App:
        if self.read_only:
            raise StoreReadOnlyError(self.path.parent, f"register {appid!r}")
        try:
            appid_ok = fields.parse_appid(appid)
        except fields.FieldError as e:
            raise CatalogError(f"appid {appid!r}: {e}") from None
        if appid_ok is None or appid_ok != appid:
            raise CatalogError(f"appid {appid!r}: must be 1-64 characters of A-Z a-z 0-9 _ -")
        if not appid[0].isalnum():
            # "-rf" reads as an option to every command that is given the appid (and to rm)
            raise CatalogError(f"appid {appid!r}: must start with a letter or a digit")
        same = self.db.execute(
            "SELECT appid FROM apps WHERE lower(appid) = lower(?)", (appid,)
        ).fetchone()
        if same is not None and same[0] != appid:
            # each app has a folder named by its appid: on a case-insensitive file system
            # (macOS, Windows) the two would be one folder
            raise CatalogError(
                f"appid {appid!r}: app {same[0]!r} exists already, and appids that differ "
                "only by case would share one folder on some file systems"
            )
        check_secret_text(secret)
        check_timezone(timezone)
        salt = secrets.token_bytes(16)
        now = time.time()
        epoch = secrets.token_hex(8)
        try:
            self.db.execute(
                "INSERT INTO apps (appid, secret_salt, secret_hash, timezone, created_at, "
                "secret_epoch) VALUES (?, ?, ?, ?, ?, ?)",
                (appid, salt, _hash_secret(secret, salt), timezone, now, epoch),
            )
        except sqlite3.IntegrityError:
            raise CatalogError(f"app {appid!r} exists already") from None
        except sqlite3.OperationalError as e:
            _raise_if_read_only(e, self.path)
            raise
        self._changed()
        return App(appid, timezone, now, epoch, None)

    def get(self, appid: str) -> App | None:
        self.refresh()
        if appid in self._cache:
            return self._cache[appid]
        row = self.db.execute(
            f"SELECT {APP_COLUMNS} FROM apps WHERE appid = ?", (appid,)
        ).fetchone()
        app = App(*row) if row else None
        if app is not None:  # unknown appids are not cached: they may be registered meanwhile
            self._cache[appid] = app
        return app

    def min_users(self, appid: str) -> int:
        """The app's withholding threshold, read fresh (another process may have set it)."""
        row = self.db.execute("SELECT min_users FROM apps WHERE appid = ?", (appid,)).fetchone()
        return int(row[0]) if row else 0

    def set_min_users(self, appid: str, k: int) -> None:
        if not 0 <= k <= MAX_MIN_USERS:
            raise CatalogError(f"min users must be 0-{MAX_MIN_USERS}, not {k}")
        with self.transaction() as db:
            cur = db.execute("UPDATE apps SET min_users = ? WHERE appid = ?", (k, appid))
            if cur.rowcount == 0:
                raise CatalogError(f"app {appid!r} is not registered")

    def retention_days(self, appid: str) -> int | None:
        """The app's retention (days; None: keep everything), read fresh (another process
        may have set it)."""
        row = self.db.execute(
            "SELECT retention_days FROM apps WHERE appid = ?", (appid,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def set_retention_days(self, appid: str, days: int | None) -> None:
        """Keep the records of the last ``days`` days before today (and today's); None keeps
        everything. Records already deleted stay deleted."""
        if days is not None and not 1 <= days <= MAX_RETENTION_DAYS:
            raise CatalogError(f"retention must be 1-{MAX_RETENTION_DAYS} days, not {days}")
        with self.transaction() as db:
            cur = db.execute("UPDATE apps SET retention_days = ? WHERE appid = ?", (days, appid))
            if cur.rowcount == 0:
                raise CatalogError(f"app {appid!r} is not registered")
        self._changed()

    def list(self) -> list[App]:
        rows = self.db.execute(f"SELECT {APP_COLUMNS} FROM apps ORDER BY appid")
        return [App(*r) for r in rows]

    def _require(self, db: sqlite3.Connection, appid: str) -> None:
        if db.execute("SELECT 1 FROM apps WHERE appid = ?", (appid,)).fetchone() is None:
            raise CatalogError(f"app {appid!r} is not registered")

    def rotate_secret(self, appid: str, secret: str) -> None:
        """A new secret; every access token, stable token and dashboard session of the app
        stops working at once (the new epoch no longer matches old sessions)."""
        check_secret_text(secret)
        salt = secrets.token_bytes(16)
        with self.transaction() as db:
            self._require(db, appid)
            db.execute(
                "UPDATE apps SET secret_salt = ?, secret_hash = ?, secret_epoch = ? "
                "WHERE appid = ?",
                (salt, _hash_secret(secret, salt), secrets.token_hex(8), appid),
            )
            db.execute("UPDATE tokens SET revoked = 1, plain = NULL WHERE appid = ?", (appid,))
        self._changed()

    def set_timezone(self, appid: str, timezone: str) -> None:
        check_timezone(timezone)
        with self.transaction() as db:
            self._require(db, appid)
            db.execute("UPDATE apps SET timezone = ? WHERE appid = ?", (timezone, appid))
        self._changed()

    def remove_app(self, appid: str) -> None:
        """The app and all its tokens are gone from the registry (its data: the store's)."""
        with self.transaction() as db:
            self._require(db, appid)
            db.execute("DELETE FROM tokens WHERE appid = ?", (appid,))
            db.execute("DELETE FROM apps WHERE appid = ?", (appid,))
        self._changed()

    def check_secret(self, appid: str, secret: str) -> bool:
        """Whether ``secret`` is the app's; the same work (one PBKDF2) for an unknown appid."""
        row = self.db.execute(
            "SELECT secret_salt, secret_hash FROM apps WHERE appid = ?",
            (appid.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),),
        ).fetchone()
        salt, expected = row if row is not None else (_DUMMY_SALT, _DUMMY_HASH)
        return hmac.compare_digest(_hash_secret(secret, salt), expected) and row is not None
