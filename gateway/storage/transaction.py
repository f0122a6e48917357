"""Transaction control on the write connection, for the unit of work (gateway.unit_of_work).

A batch of changes runs in one transaction; when a change fails after writing, the batch runs
again with each change in a savepoint of its own. The exception names are DB-API 2.0's, which
every database driver defines.
"""

from __future__ import annotations

import sqlite3

Error = sqlite3.Error
"""Any failure reported by the database."""
OperationalError = sqlite3.OperationalError
"""The database itself failed (disk full, I/O error, locked), not the statement."""


def begin(conn: sqlite3.Connection) -> None:
    """Start a write transaction, taking the write lock at once rather than at the first
    write."""
    conn.execute("BEGIN IMMEDIATE")


def commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if there is one."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def is_open(conn: sqlite3.Connection) -> bool:
    """Whether a transaction is open (a failed statement may have ended it)."""
    return conn.in_transaction


def rows_written(conn: sqlite3.Connection) -> int:
    """Rows written through `conn` since it was opened: what a change wrote is the
    difference before and after it."""
    return conn.total_changes


def savepoint(conn: sqlite3.Connection) -> None:
    """Mark where the next change begins."""
    conn.execute("SAVEPOINT change")


def release(conn: sqlite3.Connection) -> None:
    """Keep what was written since the savepoint."""
    conn.execute("RELEASE change")


def undo_to_savepoint(conn: sqlite3.Connection) -> None:
    """Undo what was written since the savepoint, and drop it."""
    conn.execute("ROLLBACK TO change")
    conn.execute("RELEASE change")
