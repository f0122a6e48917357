"""The SQLite database: schema migrations, connection settings, readers and the writer."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from gateway.storage import schema

M = TypeVar("M")

READER_CACHE_KIB = 1024
"""Page cache of each per-thread read connection, KiB."""


class StorageError(Exception):
    """The database cannot be opened or written (disk full, read-only file, corruption)."""


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Database:
    """One SQLite file in WAL mode with foreign keys on.

    Writes go through `writer`, a single connection used by one thread at a time (the unit of work's
    committer); reads use `reader()`, a connection per thread, so they never wait for a write.
    `migrated=False` leaves the schema migrations to `migrating()`, for a caller that checks
    the database before anything is written to it.
    """

    def __init__(self, path: Path, *, synchronous: str = "FULL", migrated: bool = True):
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"unknown SQLite synchronous mode {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Dataset metadata and the audit log are for the gateway only: create the file
            # 0600 (SQLite gives its -wal and -shm files the same mode).
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            self.writer = _connect(self.path, self.synchronous)
        except OSError as exc:
            raise StorageError(f"cannot open database {self.path}: {exc.strerror}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        if migrated:
            try:
                self.migrate()
            except StorageError:
                self.writer.close()
                raise
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def migrate(self) -> None:
        """Apply the pending schema migrations."""
        with self.migrating():
            pass

    @contextlib.contextmanager
    def migrating(self) -> Iterator[None]:
        """Apply the pending schema migrations in a transaction of the writer that commits
        only if the block completes: a check in the block that refuses the database (raises)
        leaves it as it was, so the release that wrote it can still open it."""
        try:
            try:
                self.writer.execute("BEGIN IMMEDIATE")
                migrate(sqlite_utils.Database(self.writer))
            except (sqlite3.Error, StorageError) as exc:
                raise StorageError(f"cannot open database {self.path}: {exc}") from exc
            yield
            self.writer.execute("COMMIT")
        finally:
            if self.writer.in_transaction:
                self.writer.execute("ROLLBACK")

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, self.synchronous)
            conn.execute("PRAGMA query_only=ON")
            # One reader per RPC thread: a small page cache each keeps their sum bounded (the
            # operating system caches the file as well).
            conn.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection; the WAL is checkpointed by the last one to close."""
        with self._lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self.writer.close()


def copy(source: Path, target: Path) -> None:
    """Copy the database `source` into `target`, created 0600 or overwritten, with SQLite's
    online backup: the pages of one committed state (those still in the WAL included), even
    while a gateway writes `source`. Overwriting goes through SQLite too, so a WAL `target`
    left behind is folded in first rather than replayed over the copy later."""
    os.close(os.open(target, os.O_CREAT | os.O_RDWR, 0o600))
    with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, \
            contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def migrate(db: sqlite_utils.Database) -> None:
    """Apply the recorded schema migrations that are still pending; StorageError, changing
    nothing, if the database has had migrations this code does not know (this code would
    misread or damage what they changed)."""
    # Every migration is pending on an empty database: that lists the ones this code knows.
    known = {m.name for m in schema.MIGRATIONS.pending(sqlite_utils.Database(memory=True))}
    unknown = [m.name for m in schema.MIGRATIONS.applied(db) if m.name not in known]
    if unknown:
        raise StorageError(f"it was written by a newer govshare (schema migrations"
                           f" {', '.join(unknown)} are unknown to this one): run that version,"
                           " or restore a backup taken before the upgrade")
    schema.MIGRATIONS.apply(db)


def insert(conn: sqlite3.Connection, table: str, model: Any, skip: tuple[str, ...] = (),
           on_conflict: str = "") -> None:
    """Insert a model (gateway.models) as one row of `table`, each field its column but those
    in `skip` (assigned by the database, or read with the row from elsewhere); `on_conflict`,
    an upsert clause, says what an existing row takes of it."""
    columns = [field.name for field in dataclasses.fields(model) if field.name not in skip]
    marks = ", ".join("?" for _ in columns)
    conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}){on_conflict}",
                 [getattr(model, column) for column in columns])


def each(cursor: sqlite3.Cursor, model: Callable[..., M]) -> Iterator[M]:
    """The rows of a cursor as `model`s (its fields are the columns), read one at a time."""
    names = [column[0] for column in cursor.description]
    for row in cursor:
        yield model(**dict(zip(names, row, strict=True)))


def every(cursor: sqlite3.Cursor, model: Callable[..., M]) -> list[M]:
    """Every row of a cursor as a `model`."""
    return list(each(cursor, model))


def first(cursor: sqlite3.Cursor, model: Callable[..., M]) -> M | None:
    """The first row of a cursor as a `model`, or None."""
    row = cursor.fetchone()
    if row is None:
        return None
    return model(**dict(zip([column[0] for column in cursor.description], row, strict=True)))
