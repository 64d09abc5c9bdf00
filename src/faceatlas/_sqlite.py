"""One SQLite file that says what it is: the opening, checking and upgrading both of faceatlas'
SQLite stores (the gallery and the photo collection) share.

- WAL journal + a busy timeout: readers never block, concurrent writers queue instead of failing;
  every write is one ``BEGIN IMMEDIATE`` transaction, so a killed process leaves either a whole
  batch or none of it.
- ``PRAGMA application_id`` marks whose file it is and ``PRAGMA user_version`` its schema version,
  upgraded on open by the subclass's migrations, each step in one transaction with its bump.
- A path that holds anything else (not SQLite, damaged, another application's database, a newer
  schema) is an error naming the file, and the file is never touched. New files are built aside
  and linked into place, so nobody ever sees half a file.
- ``secure_delete``: freed bytes are zeroed.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, cast

from faceatlas._connection import ConnectionLifecycle
from faceatlas.errors import FaceAtlasError

MEMORY = ":memory:"
Migration = Callable[[sqlite3.Connection], None]


class SqliteFile(ConnectionLifecycle):
    """The file's life: create, check, migrate, transactions. Subclasses say what they are."""

    kind: ClassVar[str]  # "gallery", "collection": in every message
    application_id: ClassVar[int]
    tables: ClassVar[frozenset[str]]  # the tables a file of this kind must have
    error: ClassVar[type[FaceAtlasError]]
    missing_hint: ClassVar[str] = "check the path"
    elsewhere_hint: ClassVar[str]  # what to do when the path holds something else
    restore_hint: ClassVar[str]  # what to do when the file is damaged

    def migrations(self) -> list[Migration]:
        """``migrations()[i]`` turns schema version i into i + 1 (inside the caller's transaction)."""
        raise NotImplementedError

    def __init__(self, path: str | os.PathLike, create: bool = True, *, timeout: float = 30.0) -> None:
        self._timeout = float(timeout)
        self._lock = threading.RLock()  # one connection, shared by threads: one transaction at a time
        self._conn: sqlite3.Connection | None = None
        if os.fspath(path) == MEMORY:
            self.path, self.url = None, MEMORY
            self._conn = self._connect(MEMORY)
            self._migrate(self._conn)
            return
        self.path = file = Path(path).expanduser().absolute()
        self.url = str(file)
        if not file.exists():
            if not create:
                raise self.error(f"no {self.kind} at {file} (create=False); {self.missing_hint}")
            self._create_file(file)
        self._check_header(file)
        self._conn = self._open_existing(file)

    # --- opening ---

    def _connect(self, target: str | Path) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, never the sqlite3 module's guesses
        conn = sqlite3.connect(target, timeout=self._timeout, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA secure_delete = ON")
        return conn

    @staticmethod
    def _use_wal(conn: sqlite3.Connection) -> None:
        # persistent in the file; set only once the file is known to be ours (it writes the header)
        conn.execute("PRAGMA journal_mode = WAL")

    def _create_file(self, path: Path) -> None:
        """Build a new file aside, then link it into place: another process sees all or nothing."""
        if not path.parent.is_dir():
            raise self.error(f"cannot create a {self.kind} at {path}: {path.parent} is not a directory")
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
            os.close(fd)
            conn = self._connect(tmp)
            try:
                self._use_wal(conn)
                self._migrate(conn)
            finally:
                conn.close()
            _publish(Path(tmp), path)
        except (OSError, sqlite3.Error) as exc:
            raise self.error(f"cannot create a {self.kind} at {path}: {exc}") from exc
        finally:
            for leftover in () if tmp is None else (tmp, tmp + "-wal", tmp + "-shm"):
                if os.path.exists(leftover):
                    os.unlink(leftover)

    def _check_header(self, path: Path) -> None:
        """Refuse what cannot be ours before SQLite sees it, without opening the file ourselves.

        Never ``open()`` a database file outside SQLite: on POSIX, closing *any* descriptor of a
        file drops every fcntl lock this process holds on it, SQLite's included. Another process
        then believes it is the file's last user, checkpoints and deletes the live WAL under our
        connections ("How To Corrupt An SQLite Database File", 2.2). A ``stat`` holds no
        descriptor; SQLite itself tells a database from anything else (``_verify``)."""
        try:
            info = path.stat()
        except OSError as exc:
            raise self.error(f"cannot read {self.kind} {path}: {exc}") from exc
        if stat.S_ISDIR(info.st_mode):
            raise self.error(f"{path} is a directory, not a {self.kind} file")
        if info.st_size == 0:  # SQLite would take an empty file for a new database and write into it
            raise self._not_ours("is empty")
        if not os.access(path, os.R_OK):
            raise self.error(f"cannot read {self.kind} {path}: permission denied")

    def _not_ours(self, what: str) -> FaceAtlasError:
        return self.error(
            f"{self.path} {what}, so it is not a faceatlas {self.kind}; it was left untouched ({self.elsewhere_hint})"
        )

    def _open_existing(self, path: Path) -> sqlite3.Connection:
        try:
            conn = self._connect(path)
        except sqlite3.Error as exc:
            raise self.error(f"cannot open {self.kind} {self.path}: {exc}") from exc
        try:
            self._verify(conn)
            self._use_wal(conn)
            self._migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self.error(f"cannot open {self.kind} {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _verify(self, conn: sqlite3.Connection) -> None:
        """Refuse anything that is not an intact file of this kind."""
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:  # SQLite's own reading of the header
                raise self._not_ours("is not a SQLite database") from exc
            raise self.error(f"{self.path} is damaged or not a {self.kind} ({exc}); it was left untouched") from exc
        if problems != ["ok"]:
            raise self.error(
                f"{self.path} failed SQLite's integrity check ({'; '.join(problems)}); {self.restore_hint}"
            )
        if app_id != self.application_id or not self.tables <= tables:
            raise self.error(
                f"{self.path} is a SQLite database but not a faceatlas {self.kind} "
                f"(application_id {app_id:#x}, tables {sorted(tables)}); it was left untouched"
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema to the latest version, each step in the same transaction as its bump."""
        migrations = self.migrations()
        latest = len(migrations)
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] == latest:
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = conn.execute("PRAGMA user_version").fetchone()[0]  # again: another process may have won
                if current > latest:
                    raise self.error(
                        f"{self.url} has {self.kind} schema version {current}, newer than this faceatlas knows "
                        f"({latest}); upgrade faceatlas"
                    )
                for step in range(current, latest):
                    migrations[step](conn)
                    conn.execute(f"PRAGMA user_version = {step + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self.error(f"cannot upgrade {self.kind} {self.url}: {exc}") from exc

    # --- transactions ---

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise self.error(f"{self.kind} {self.url} is closed")
        return self._conn

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction; a write takes the write lock up front (BEGIN IMMEDIATE) so it never deadlocks."""
        with self._lock:
            conn = self._db
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self.error(f"{self.kind} {self.url}: {exc}") from exc

    def empty_wal(self) -> str | None:
        """Copy the WAL's pages into the file and truncate it: until then the WAL still holds the
        page versions from before a delete (secure_delete zeroes only the new ones), and the file
        the old page. None when done, else why not (a sentence naming no path)."""
        if self.path is None:  # in memory: nothing on disk
            return None
        with self._lock:
            try:  # waits (busy timeout) for readers of older snapshots, in any process
                busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.Error as exc:
                return f"the {self.kind}'s WAL could not be emptied ({exc}); the next checkpoint erases the old pages"
        if busy:
            return (
                f"another connection to the {self.kind} kept its WAL in use, so the page versions from before the "
                "delete may remain in the WAL or the file until the next checkpoint (when that connection is done)"
            )
        return None


def inserted_rowid(cursor: sqlite3.Cursor) -> int:
    """The rowid of the row the cursor's INSERT just added. ``lastrowid`` is typed optional
    because it is None before a cursor's first INSERT; after a successful one it is an int."""
    return cast(int, cursor.lastrowid)


def _publish(built: Path, path: Path) -> None:
    """Put a finished file at ``path`` unless something is there already (then that one is opened)."""
    try:
        os.link(built, path)  # atomic, and never replaces
    except FileExistsError:
        pass
    except OSError:  # a filesystem without hard links: exclusive create, then copy
        try:
            with open(path, "xb") as out:
                out.write(built.read_bytes())
        except FileExistsError:
            pass
