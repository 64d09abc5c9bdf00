"""API keys (hashed at rest, scoped), the per-key rate limiter, and `faceatlas keys`."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceatlas.errors import FaceAtlasError
from faceatlas.server.keys import SCOPES, ApiKey, KeyStore, KeyStoreError, allows
from faceatlas.server.keys_cli import app as keys_app
from faceatlas.server.ratelimit import RateLimiter

TOKEN_RE = re.compile(r"fa_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path: Path):
    with KeyStore.open(tmp_path / "keys.db") as keys:
        yield keys


# --- scopes ---------------------------------------------------------------------------------------


def test_scopes_are_ordered():
    assert SCOPES == ("read", "write", "admin")
    assert allows("read", "read") and not allows("read", "write") and not allows("read", "admin")
    assert allows("write", "read") and allows("write", "write") and not allows("write", "admin")
    assert all(allows("admin", need) for need in SCOPES)
    assert not allows("root", "read") and not allows(None, "read")  # type: ignore[arg-type]  # fail closed
    with pytest.raises(ValueError, match="unknown scope"):
        allows("admin", "superuser")


# --- the store ------------------------------------------------------------------------------------


def test_create_verify_revoke_list(store: KeyStore):
    record, token = store.create("ci", "write")
    assert TOKEN_RE.fullmatch(token)
    assert token.startswith(f"fa_{record.key_id}_")
    assert (record.name, record.scope, record.revoked_at, record.last_used_at) == ("ci", "write", None, None)
    other, other_token = store.create("dashboard", "read")
    assert other.key_id != record.key_id and other_token != token

    got = store.verify(token)
    assert isinstance(got, ApiKey)
    assert (got.key_id, got.name, got.scope) == (record.key_id, "ci", "write")
    assert got.last_used_at is not None  # the first use is recorded
    assert store.verify(other_token).key_id == other.key_id

    listed = store.list()
    assert [k.key_id for k in listed] == [record.key_id, other.key_id]  # in the order created
    assert all(not hasattr(k, "token_sha256") and not hasattr(k, "token") for k in listed)
    assert store.count_active() == 2

    assert store.revoke(record.key_id) is True
    assert store.verify(token) is None  # at once, although it was cached a moment ago
    assert store.verify(other_token) is not None
    assert store.revoke(record.key_id) is False  # already revoked
    assert store.revoke("00000000") is False and store.revoke("not an id") is False
    assert store.count_active() == 1
    revoked = store.get(record.key_id)
    assert revoked is not None and revoked.revoked_at is not None and not revoked.active
    assert [k.key_id for k in store.list(include_revoked=False)] == [other.key_id]
    assert len(store.list()) == 2


def test_name_and_scope_are_validated(store: KeyStore):
    for bad_name in ["", "x" * 101, "tab\there", "new\nline", "   "]:
        with pytest.raises(ValueError, match="key name"):
            store.create(bad_name, "read")
    for not_a_name in [None, 7]:
        with pytest.raises(TypeError, match="key name must be a string"):
            store.create(not_a_name, "read")  # type: ignore[arg-type]
    for bad_scope in ["root", "READ", "", None]:
        with pytest.raises(ValueError, match="unknown scope"):
            store.create("ok", bad_scope)  # type: ignore[arg-type]
    assert store.create("x" * 100, "admin")[0].name == "x" * 100
    assert store.create("Émile's laptop ☕", "read")[0].name == "Émile's laptop ☕"
    assert store.count_active() == 2  # nothing was stored by the refused calls


def _near_misses(key_id: str, token: str) -> list[str]:
    """Strings that look like ``token`` but are not it: each differs from it by construction."""
    secret = token[12:]
    other_id = "00000000" if key_id != "00000000" else "00000001"
    misses = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # wrong secret
        token[:-1],  # truncated
        token + "x",
        token[:20],
        f"fa_{key_id}_",
        f"fb_{key_id}_{secret}",
        f"fa_{key_id}-{secret}",
        f"fa_{key_id}_{secret[:-1]}é",  # non-ascii, right length
        f"fa_{key_id}_{secret[:-1]}\x00",
        " " + token[1:],
        token.upper(),  # "FA_": the prefix is lower case
        f"fa_{other_id}_{secret}",  # well-formed, unknown id
        f"fa_{key_id}_" + ("A" * 43 if secret != "A" * 43 else "B" * 43),  # well-formed, wrong secret
    ]
    if key_id != key_id.upper():  # an id of digits only has no upper-case spelling: that would be the token
        misses.append(f"fa_{key_id.upper()}_{secret}")
    assert token not in misses
    return misses


def test_garbage_tokens_are_none_without_raising(store: KeyStore):
    record, token = store.create("ci", "admin")
    garbage: list[object] = [
        *_near_misses(record.key_id, token),
        "",
        "fa_",
        "fa_" + "é" * 52,
        "🔑" * 55,
        "x" * 10_000_000,  # huge
        token * 1000,
        None,
        0,
        123456789,
        12.5,
        b"fa_" + token[3:].encode(),  # bytes, not str
        [token],
        {"token": token},
        object(),
    ]
    for item in garbage:
        assert store.verify(item) is None, repr(item)[:80]
    assert store.verify(token) is not None  # the real one still works


@pytest.mark.parametrize("forced_id", ["12345678", "00000000", "abcdef01"])  # all digits: ~2 % of random ids
def test_near_misses_of_any_key_id_are_refused(store: KeyStore, monkeypatch: pytest.MonkeyPatch, forced_id: str):
    import secrets

    monkeypatch.setattr(secrets, "token_hex", lambda nbytes=None: forced_id)
    record, token = store.create("forced", "read")
    assert record.key_id == forced_id
    for item in _near_misses(record.key_id, token):
        assert store.verify(item) is None, item
    assert store.verify(token) is not None
    if forced_id.isdigit():
        assert store.verify(f"fa_{forced_id.upper()}_{token[12:]}") is not None  # the same string: the real token


def test_near_misses_hold_for_many_random_key_ids(store: KeyStore):
    for _ in range(300):  # P(no all-digit id among 300) = 0.977 ** 300, about 0.1 %
        record, token = store.create("many", "read")
        for item in _near_misses(record.key_id, token):
            assert store.verify(item) is None, item
        assert store.verify(token) is not None


def test_the_file_holds_no_token(tmp_path: Path):
    path = tmp_path / "keys.db"
    tokens = []
    with KeyStore.open(path) as store:
        for i, scope in enumerate(SCOPES):
            tokens.append(store.create(f"key {i}", scope)[1])
        for token in tokens:
            assert store.verify(token) is not None
        # while open, part of the data may sit in the WAL: read every file of the database
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("keys.db"))
        for token in tokens:
            assert token.encode() not in raw
            assert token.split("_", 2)[2].encode() not in raw  # nor the secret alone
    raw = path.read_bytes()
    for token in tokens:
        assert token.encode() not in raw and token.split("_", 2)[2].encode() not in raw
        assert hashlib.sha256(token.encode()).digest() in raw  # what is kept instead (so we read the real data)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x4641434B


def test_persistence_across_reopen(tmp_path: Path):
    path = tmp_path / "keys.db"
    with KeyStore.open(path) as store:
        kept, kept_token = store.create("kept", "write")
        gone, gone_token = store.create("gone", "read")
        store.revoke(gone.key_id)
    with KeyStore.open(path, create=False) as store:
        got = store.verify(kept_token)
        assert got is not None and (got.key_id, got.scope, got.name) == (kept.key_id, "write", "kept")
        assert store.verify(gone_token) is None
        assert store.count_active() == 1
        assert {k.key_id for k in store.list()} == {kept.key_id, gone.key_id}


def test_refuses_missing_and_foreign_files(tmp_path: Path):
    with pytest.raises(KeyStoreError, match="no key store"):
        KeyStore.open(tmp_path / "nope.db", create=False)
    assert not (tmp_path / "nope.db").exists()
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE api_keys (x)")
    before = foreign.read_bytes()
    with pytest.raises(FaceAtlasError, match="not a faceatlas key store"):
        KeyStore.open(foreign)
    assert foreign.read_bytes() == before
    text = tmp_path / "keys.txt"
    text.write_text("fa_deadbeef_secret\n")
    with pytest.raises(KeyStoreError, match="not a SQLite database"):
        KeyStore.open(text)
    assert text.read_text() == "fa_deadbeef_secret\n"


def test_revoke_from_another_process_takes_effect_after_the_cache(tmp_path: Path):
    clock = Clock()
    path = tmp_path / "keys.db"
    with KeyStore.open(path, clock=clock) as server, KeyStore.open(path) as cli:
        record, token = server.create("ci", "read")
        assert server.verify(token) is not None  # now cached
        assert cli.revoke(record.key_id)
        clock.t += 1
        assert server.verify(token) is not None  # still within the 5 s cache
        clock.t += 5
        assert server.verify(token) is None  # re-read from the file: revoked


def test_last_used_is_written_at_most_once_a_minute(tmp_path: Path):
    clock = Clock()
    with KeyStore.open(tmp_path / "keys.db", clock=clock, cache_seconds=0) as store:
        record, token = store.create("ci", "read")
        assert store.get(record.key_id).last_used_at is None
        first = store.verify(token).last_used_at
        assert store.get(record.key_id).last_used_at == first
        clock.t += 30
        store.verify(token)
        assert store.get(record.key_id).last_used_at == first  # not written again within the minute
        clock.t += 31
        store.verify(token)
        later = store.get(record.key_id).last_used_at
        assert later is not None and later > first
    with KeyStore.open(tmp_path / "keys.db", clock=clock, cache_seconds=0) as store:
        store.verify(token)  # a fresh process knows the stored time and does not write again at once
        assert store.get(record.key_id).last_used_at == later


def test_threads_verify_concurrently(tmp_path: Path):
    clock = Clock()
    with KeyStore.open(tmp_path / "keys.db", cache_seconds=0, clock=clock) as store:  # every verify reads SQLite
        keys = [store.create(f"k{i}", SCOPES[i % 3]) for i in range(4)]
        results: list[list[str | None]] = [[], []]
        errors: list[BaseException] = []
        start = threading.Barrier(3)

        def verify(slot: int) -> None:
            try:
                start.wait()
                for n in range(300):
                    _, token = keys[(n + slot) % len(keys)]
                    got = store.verify(token)
                    results[slot].append(None if got is None else got.key_id)
                    assert store.verify(token[:-1]) is None
                    clock.t += 1  # so that last_used_at writes happen meanwhile
            except Exception as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        def create_more() -> None:
            try:
                start.wait()
                for i in range(30):
                    store.create(f"extra {i}", "read")
            except Exception as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=verify, args=(s,)) for s in (0, 1)] + [threading.Thread(target=create_more)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        for slot in (0, 1):
            expected = [keys[(n + slot) % len(keys)][0].key_id for n in range(300)]
            assert results[slot] == expected
        assert store.count_active() == 34


def test_memory_store_works():
    with KeyStore.open(":memory:") as store:
        record, token = store.create("tmp", "read")
        assert store.verify(token).key_id == record.key_id


# --- the rate limiter -----------------------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_refuses():
    limiter = RateLimiter(rate_per_minute=60, burst=5)
    assert [limiter.check("a", now=100.0) for _ in range(5)] == [0.0] * 5
    wait = limiter.check("a", now=100.0)
    assert wait == pytest.approx(1.0)  # one token a second
    assert limiter.check("a", now=100.0) == pytest.approx(1.0)  # a refusal costs nothing
    assert limiter.check("b", now=100.0) == 0.0  # another key has its own bucket
    assert limiter.check("a", now=100.4) == pytest.approx(0.6)


def test_rate_limiter_refills_over_time():
    limiter = RateLimiter(rate_per_minute=7, burst=2)
    t = 0.0
    assert limiter.check("k", now=t) == 0.0 and limiter.check("k", now=t) == 0.0
    wait = limiter.check("k", now=t)
    assert wait == pytest.approx(60 / 7)
    assert limiter.check("k", now=t + wait - 0.01) > 0
    assert limiter.check("k", now=t + wait) == 0.0  # exactly when it said, despite float rounding
    assert limiter.check("k", now=t + wait) > 0
    # a long pause refills to the burst, not beyond
    t = 10_000.0
    assert [limiter.check("k", now=t) for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.check("k", now=t) > 0


def test_rate_limiter_default_burst():
    assert RateLimiter(600).burst == 100
    assert RateLimiter(60).burst == 10
    assert RateLimiter(5).burst == 1
    limiter = RateLimiter(60)
    assert sum(limiter.check("k", now=0.0) == 0.0 for _ in range(50)) == 10


def test_rate_limiter_unlimited():
    for rate in (0, -1):
        limiter = RateLimiter(rate)
        assert not limiter.limited
        assert all(limiter.check("k", now=0.0) == 0.0 for _ in range(10_000))
        assert len(limiter) == 0


def test_rate_limiter_rejects_bad_settings():
    for kwargs in ({"rate_per_minute": 60, "burst": 0}, {"rate_per_minute": 60, "burst": -2}, {"max_buckets": 0}):
        with pytest.raises(ValueError):
            RateLimiter(**{"rate_per_minute": 60, **kwargs})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RateLimiter(1.5)  # type: ignore[arg-type]


def test_rate_limiter_memory_is_bounded():
    limiter = RateLimiter(rate_per_minute=60, burst=10, max_buckets=1000)
    for i in range(5000):
        limiter.check(f"client{i}", now=0.0)
    assert len(limiter) == 1000  # capped: the least recently used went first
    limiter.check("client4999", now=0.0)
    for _ in range(9):
        limiter.check("client4999", now=0.0)
    assert limiter.check("client4999", now=0.0) > 0  # a recent bucket is kept, drained
    # buckets idle longer than a full refill (10 s here) are forgotten
    limiter.check("late", now=10.5)
    assert len(limiter) == 1
    assert limiter.check("client4999", now=10.5) == 0.0  # as a full bucket would have allowed


def test_rate_limiter_threads():
    limiter = RateLimiter(rate_per_minute=60, burst=1000)
    allowed = []
    lock = threading.Lock()

    def hammer() -> None:
        n = sum(limiter.check("shared", now=0.0) == 0.0 for _ in range(500))
        with lock:
            allowed.append(n)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 1000  # exactly the burst, however the threads interleaved


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_create_list_revoke(tmp_path: Path):
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]

    result = runner.invoke(keys_app, ["list", *data])
    assert result.exit_code == 0 and result.stdout == "" and "no API keys" in result.stderr

    result = runner.invoke(keys_app, ["create", "ci bot", "--scope", "write", *data])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert TOKEN_RE.fullmatch(token)  # stdout is the token alone
    assert "cannot be shown again" in result.stderr
    key_id = token[3:11]
    with KeyStore.open(tmp_path / "data" / "keys.db", create=False) as store:
        got = store.verify(token)
        assert got is not None and (got.name, got.scope) == ("ci bot", "write")

    result = runner.invoke(keys_app, ["create", "viewer", *data])
    assert result.exit_code == 0
    viewer_token = result.stdout.strip()

    result = runner.invoke(keys_app, ["list", *data])
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert any(line.startswith(f"{key_id}\twrite\t") and line.endswith("\tactive\tci bot") for line in lines)
    assert any("\tread\t" in line and line.endswith("viewer") for line in lines)
    assert token not in result.output and token.split("_", 2)[2] not in result.output

    result = runner.invoke(keys_app, ["revoke", key_id, *data])
    assert result.exit_code == 0 and f"revoked API key {key_id}" in result.stdout
    result = runner.invoke(keys_app, ["revoke", key_id, *data])
    assert result.exit_code == 0 and "already revoked" in result.stdout
    result = runner.invoke(keys_app, ["revoke", "00000000", *data])
    assert result.exit_code == 3 and "no API key" in result.stderr

    result = runner.invoke(keys_app, ["list", "--json", *data])
    rows = {row["key_id"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows[key_id]["revoked_at"] is not None and rows[key_id]["name"] == "ci bot"
    result = runner.invoke(keys_app, ["list", "--active", *data])
    assert key_id not in result.stdout and len(result.stdout.splitlines()) == 1

    with KeyStore.open(tmp_path / "data" / "keys.db", create=False) as store:
        assert store.verify(token) is None
        assert store.verify(viewer_token).scope == "read"


def test_cli_errors_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    runner = CliRunner()
    monkeypatch.setenv("FACEATLAS_DATA_DIR", str(tmp_path / "env"))
    result = runner.invoke(keys_app, ["create", "ops", "--scope", "admin"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env" / "keys.db").exists()

    result = runner.invoke(keys_app, ["create", "ops", "--scope", "root"])
    assert result.exit_code == 2  # not a scope: a usage error
    result = runner.invoke(keys_app, ["create", "x" * 101])
    assert result.exit_code == 2 and "1 to 100 characters" in result.stderr

    result = runner.invoke(keys_app, ["revoke", "deadbeef", "--data-dir", str(tmp_path / "empty")])
    assert result.exit_code == 3 and "no key store" in result.stderr
    assert not (tmp_path / "empty").exists()  # revoke never creates a file

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keys.db").write_text("not a database")
    result = runner.invoke(keys_app, ["list", "--data-dir", str(foreign)])
    assert result.exit_code == 3 and "not a SQLite database" in result.stderr
    assert (foreign / "keys.db").read_text() == "not a database"
