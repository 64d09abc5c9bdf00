"""API keys for the REST service: random tokens, only their SHA-256 kept, each with a scope.

A token reads ``fa_<key_id>_<secret>``: ``key_id`` is 8 random lowercase hex characters (unique in
the file, shown in lists and logs), ``secret`` is ``secrets.token_urlsafe(32)`` (256 random bits).
The plaintext is returned once, by ``KeyStore.create``; the file keeps its SHA-256, never the token.

One SQLite file (``keys.db``), kept as the gallery and collection files are (``faceatlas._sqlite``):
``PRAGMA application_id`` ("FACK") says it is a key store, ``PRAGMA user_version`` its schema
version (``MIGRATIONS``); anything else at the path is a KeyStoreError and is never touched.

Scopes are ordered, ``read`` < ``write`` < ``admin``: a key may do what its scope or any lower one
allows (``allows``). Apart from its scope, a key may or may not see private people (``private``,
schema 2): a permission of its own, so a read key can be trusted with them and a write key not;
an ``admin`` key sees everything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from faceatlas._sqlite import Migration, SqliteFile
from faceatlas.errors import FaceAtlasError, InvalidArgumentError

__all__ = ["SCOPES", "ApiKey", "KeyStore", "KeyStoreError", "allows"]

log = logging.getLogger(__name__)

#: marks the file as a faceatlas API key store in the SQLite header ("FACK")
APPLICATION_ID = 0x4641434B

#: lowest first: a key with a scope may do everything the scopes before it may
SCOPES: tuple[str, ...] = ("read", "write", "admin")
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}

PREFIX = "fa_"
MAX_NAME = 100
_SECRET_BYTES = 32
_SECRET_CHARS = 43  # len(secrets.token_urlsafe(32)): base64url of 32 bytes, unpadded
TOKEN_LENGTH = len(PREFIX) + 8 + 1 + _SECRET_CHARS
_TOKEN = re.compile(rf"fa_([0-9a-f]{{8}})_[A-Za-z0-9_-]{{{_SECRET_CHARS}}}", re.ASCII)
_KEY_ID = re.compile(r"[0-9a-f]{8}", re.ASCII)

CACHE_SECONDS = 5.0  # how long a verified key is trusted without reading the file again
TOUCH_SECONDS = 60.0  # last_used_at is written at most this often per key


class KeyStoreError(FaceAtlasError):
    """A key file is unreadable, not a key store, or cannot be written."""


def allows(have: str, need: str) -> bool:
    """Whether a key of scope ``have`` may do what needs scope ``need`` (``admin`` may do everything).

    An unknown ``have`` allows nothing (fail closed); an unknown ``need`` is a bug in the caller and
    raises ValueError.
    """
    if need not in _RANK:
        raise InvalidArgumentError(f"unknown scope {need!r}; scopes are {', '.join(SCOPES)}")
    return isinstance(have, str) and have in _RANK and _RANK[have] >= _RANK[need]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as stored, without its hash. Times are ISO 8601, UTC, to the second."""

    key_id: str
    name: str
    scope: str
    created_at: str
    last_used_at: str | None  # None = never used; may lag real use by up to a minute
    revoked_at: str | None  # None = active
    private: bool = False  # may see private people (an admin key may, whatever this says)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def sees_private(self) -> bool:
        """Whether the key may see private people: its own permission, or the admin scope."""
        return bool(self.private) or self.scope == "admin"


def hash_token(token: str) -> bytes:
    """SHA-256 of a token: what the file keeps instead of it.

    A single fast hash is right here, unlike for passwords. Password hashes (bcrypt, scrypt,
    argon2) are slow because passwords come from a small, guessable space, so a stolen hash can be
    brute-forced unless every guess is expensive. A token's secret is 256 bits from ``secrets``: no
    guessing strategy beats trying 2**256 values, which no slowdown factor changes, so a salt or a
    work factor would buy nothing while costing CPU on every request. A preimage-resistant hash is
    all it takes to make a leaked file useless for authenticating.
    """
    return hashlib.sha256(token.encode("ascii")).digest()


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """The first schema: one row per key."""
    scopes = ", ".join(f"'{s}'" for s in SCOPES)
    conn.execute(
        "CREATE TABLE api_keys ("
        " key_id TEXT PRIMARY KEY,"
        " name TEXT NOT NULL,"
        f" scope TEXT NOT NULL CHECK (scope IN ({scopes})),"
        " token_sha256 BLOB NOT NULL CHECK (length(token_sha256) = 32),"
        " created_at TEXT NOT NULL,"
        " last_used_at TEXT,"  # NULL = never used
        " revoked_at TEXT)"  # NULL = active
    )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Private people: whether a key may see them, apart from its scope (keys made before may not)."""
    conn.execute("ALTER TABLE api_keys ADD COLUMN private INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1))")


#: MIGRATIONS[i] turns a schema of version i into version i + 1 (inside the caller's transaction)
MIGRATIONS: list[Migration] = [_migrate_0_to_1, _migrate_1_to_2]

_COLUMNS = "key_id, name, scope, created_at, last_used_at, revoked_at, private"


def _record(row: tuple | sqlite3.Row) -> ApiKey:
    key_id, name, scope, created_at, last_used_at, revoked_at, private = row
    return ApiKey(key_id, name, scope, created_at, last_used_at, revoked_at, bool(private))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _epoch(iso: str | None) -> float | None:
    if iso is None:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a key name must be a string, got {type(name).__name__}")
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidArgumentError(f"a key name must be 1 to {MAX_NAME} characters long, got {len(name)}")
    if not name.isprintable() or not name.strip():
        raise InvalidArgumentError(f"a key name must be printable characters, not only spaces, got {name!r}")
    return name


def _check_scope(scope: object) -> str:
    if not isinstance(scope, str) or scope not in _RANK:
        raise InvalidArgumentError(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}")
    return scope


class KeyStore(SqliteFile):
    """API keys in one SQLite file; see the module docstring. Safe to share between threads.

    >>> with KeyStore.open("keys.db") as keys:
    ...     record, token = keys.create("ci", "write")   # token: show it once, it is not stored
    ...     keys.verify(token)                             # ApiKey, or None for anything else

    ``verify`` keeps keys it verified in memory for ``cache_seconds``, so most requests never reach
    SQLite. A revoke through the same object takes effect at once; one made by another process (the
    CLI) within ``cache_seconds``.
    """

    kind = "key store"
    application_id = APPLICATION_ID
    tables = frozenset({"api_keys"})
    error = KeyStoreError
    missing_hint = "create a key first (faceatlas keys create NAME), or check --data-dir"
    elsewhere_hint = "move it away, or pass another --data-dir"
    restore_hint = "restore it from a backup, or move it away and create new keys"

    def __init__(
        self,
        path: str | os.PathLike[str],
        create: bool = True,
        *,
        timeout: float = 30.0,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._cache_seconds = float(cache_seconds)
        self._cache_lock = threading.Lock()
        # key_id -> (record, stored hash, when verified): valid keys only, so no bigger than the file
        self._cache: dict[str, tuple[ApiKey, bytes, float]] = {}
        self._touched: dict[str, float] = {}  # key_id -> the last_used_at we know is in the file
        super().__init__(path, create=create, timeout=timeout)

    def migrations(self) -> list[Migration]:
        return MIGRATIONS

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        create: bool = True,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> KeyStore:
        """Open a key file, creating it if missing (unless ``create=False``)."""
        return cls(path, create=create, cache_seconds=cache_seconds, clock=clock)

    def __repr__(self) -> str:
        return f"KeyStore({str(self.path)!r})"

    # --- managing keys ---

    def create(self, name: str, scope: str, private: bool = False) -> tuple[ApiKey, str]:
        """A new key: its record, and the plaintext token, which is not stored and cannot be shown again.
        ``private``: the key may see private people (an admin key may anyway)."""
        name, scope = _check_name(name), _check_scope(scope)
        if not isinstance(private, bool):
            raise InvalidArgumentError(f"private must be True or False, got {private!r}")
        created = _iso(self._clock())
        with self._transaction(write=True) as conn:
            for _ in range(100):  # 2**32 ids: a clash is rare, many in a row mean something is broken
                key_id = secrets.token_hex(4)
                if conn.execute("SELECT 1 FROM api_keys WHERE key_id = ?", (key_id,)).fetchone() is None:
                    break
            else:
                raise KeyStoreError(f"could not find an unused key id in {self.url}")
            token = f"{PREFIX}{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
            conn.execute(
                "INSERT INTO api_keys (key_id, name, scope, token_sha256, created_at, private)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, scope, hash_token(token), created, int(private)),
            )
        return ApiKey(key_id, name, scope, created, None, None, private), token

    def list(self, include_revoked: bool = True) -> list[ApiKey]:
        """Every key, in the order they were created (without hashes)."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        with self._transaction(write=False) as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys{where} ORDER BY rowid").fetchall()
        return [_record(row) for row in rows]

    def get(self, key_id: str) -> ApiKey | None:
        """One key by id, revoked or not; None if there is none."""
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            return None
        with self._transaction(write=False) as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return None if row is None else _record(row)

    def revoke(self, key_id: str) -> bool:
        """Revoke a key for good; False if there is no such key or it was revoked already."""
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            return False
        with self._transaction(write=True) as conn:
            done = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (_iso(self._clock()), key_id),
            ).rowcount
            # still under the store's lock: no verify can put the key back between this and the commit
            with self._cache_lock:
                self._cache.pop(key_id, None)
                self._touched.pop(key_id, None)
        return done == 1

    def count_active(self) -> int:
        """How many keys are not revoked."""
        with self._transaction(write=False) as conn:
            return int(conn.execute("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL").fetchone()[0])

    # --- the hot path ---

    def verify(self, token: object) -> ApiKey | None:
        """The active key whose token this is, else None. Never raises on what a client sends.

        Anything that is not a well-formed token (wrong type, length, characters) is None before
        any lookup; a well-formed one is compared by hash in constant time.
        """
        if not isinstance(token, str) or len(token) != TOKEN_LENGTH:
            return None
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        key_id, digest, now = match.group(1), hash_token(token), self._clock()
        with self._cache_lock:
            hit = self._cache.get(key_id)
        if hit is not None and 0 <= now - hit[2] < self._cache_seconds:
            record, stored, _ = hit
            if not hmac.compare_digest(digest, stored):
                return None
        else:
            loaded = self._load(key_id, digest, now)
            if loaded is None:
                return None
            record = loaded
        return self._touch(record, now)

    def _load(self, key_id: str, digest: bytes, now: float) -> ApiKey | None:
        with self._lock:  # revoke drops the cached key under this lock too: never a stale entry after it
            with self._transaction(write=False) as conn:
                row = conn.execute(
                    f"SELECT {_COLUMNS}, token_sha256 FROM api_keys WHERE key_id = ?", (key_id,)
                ).fetchone()
            if row is None:
                return None
            record, stored = _record(row[:-1]), bytes(row[-1])
            if not hmac.compare_digest(digest, stored) or record.revoked_at is not None:
                return None
            with self._cache_lock:
                if self._cache_seconds > 0:
                    self._cache[key_id] = (record, stored, now)
                if key_id not in self._touched and record.last_used_at is not None:
                    self._touched[key_id] = _epoch(record.last_used_at) or 0.0
        return record

    def _touch(self, record: ApiKey, now: float) -> ApiKey:
        """Write last_used_at, at most once a minute per key (a write per request would serialise them)."""
        with self._cache_lock:
            last = self._touched.get(record.key_id)
            if last is not None and 0 <= now - last < TOUCH_SECONDS:
                return record
            self._touched[record.key_id] = now  # claimed: other threads skip while this one writes
        used = _iso(now)
        try:
            with self._transaction(write=True) as conn:
                conn.execute(
                    "UPDATE api_keys SET last_used_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                    (used, record.key_id),
                )
        except KeyStoreError as exc:  # a read-only or busy file must not turn a valid key away
            log.warning("could not record the use of API key %s: %s", record.key_id, exc)
            return record
        return dataclasses.replace(record, last_used_at=used)
