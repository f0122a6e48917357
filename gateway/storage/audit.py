"""SQL for the audit log: leaves, their subjects, tree nodes and checkpoints."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from gateway.storage.database import first, rows


def tree_size(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(leaf_index) FROM audit_leaves").fetchone()
    return 0 if row[0] is None else row[0] + 1


def insert_leaves(conn: sqlite3.Connection, leaves: Sequence[tuple[Any, ...]]) -> None:
    """Rows of (leaf_index, record, create_time, actor, action, outcome)."""
    conn.executemany(
        "INSERT INTO audit_leaves (leaf_index, record, create_time, actor, action, outcome)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        leaves,
    )


def insert_subjects(conn: sqlite3.Connection, subjects: Sequence[tuple[str, int]]) -> None:
    """Rows of (subject, leaf_index)."""
    conn.executemany(
        "INSERT OR IGNORE INTO audit_subjects (subject, leaf_index) VALUES (?, ?)", subjects
    )


def insert_nodes(conn: sqlite3.Connection, nodes: Sequence[tuple[int, int, bytes]]) -> None:
    """Rows of (level, idx, hash) for perfect subtrees completed by an append."""
    conn.executemany("INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)


def fetch_nodes(conn: sqlite3.Connection, coords: Sequence[tuple[int, int]]) -> list[bytes]:
    """The hashes of the perfect subtrees at `coords`, in order, in one query."""
    if not coords:
        return []
    clause = " OR ".join("(level = ? AND idx = ?)" for _ in coords)
    params = [value for coord in coords for value in coord]
    found = {
        (level, idx): digest
        for level, idx, digest in conn.execute(
            f"SELECT level, idx, hash FROM tree_nodes WHERE {clause}", params
        )
    }
    missing = [coord for coord in coords if coord not in found]
    if missing:
        raise LookupError(f"tree nodes missing from storage: {missing[:4]}")
    return [found[coord] for coord in coords]


def insert_checkpoint(
    conn: sqlite3.Connection, size: int, root: bytes, note: bytes, when: str
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO checkpoints (tree_size, root_hash, note, create_time)"
        " VALUES (?, ?, ?, ?)",
        (size, root, note, when),
    )


def latest_checkpoint(conn: sqlite3.Connection) -> dict[str, Any] | None:
    return first(conn.execute("SELECT * FROM checkpoints ORDER BY tree_size DESC LIMIT 1"))


def checkpoints(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every stored checkpoint, oldest first."""
    return rows(conn.execute("SELECT * FROM checkpoints ORDER BY tree_size"))


def get_leaf(conn: sqlite3.Connection, leaf_index: int) -> dict[str, Any] | None:
    return first(conn.execute("SELECT * FROM audit_leaves WHERE leaf_index = ?", (leaf_index,)))


def iter_records(conn: sqlite3.Connection, batch: int = 10_000) -> Iterator[tuple[int, bytes]]:
    """Every (leaf_index, record) in order, read in batches to bound memory."""
    after = -1
    while True:
        found = conn.execute(
            "SELECT leaf_index, record FROM audit_leaves WHERE leaf_index > ?"
            " ORDER BY leaf_index LIMIT ?",
            (after, batch),
        ).fetchall()
        if not found:
            return
        yield from found
        after = found[-1][0]


def iter_nodes(conn: sqlite3.Connection, level: int) -> Iterator[tuple[int, bytes]]:
    """Every stored (idx, hash) of one tree level, in order."""
    yield from conn.execute(
        "SELECT idx, hash FROM tree_nodes WHERE level = ? ORDER BY idx", (level,)
    )


def list_leaves(
    conn: sqlite3.Connection,
    *,
    after: int,
    limit: int,
    actor: str = "",
    action: str = "",
    outcome: str = "",
    subjects: Sequence[str] = (),
    any_subject: Sequence[str] = (),
    start_time: str = "",
    end_time: str = "",
) -> list[dict[str, Any]]:
    """Leaves with leaf_index > after matching every filter, oldest first.

    `subjects`: the leaf must concern each of these; `any_subject`: at least one of these (the
    visibility rule for an agency).
    """
    where = ["l.leaf_index > ?"]
    params: list[Any] = [after]
    for column, value in (("actor", actor), ("action", action), ("outcome", outcome)):
        if value:
            where.append(f"l.{column} = ?")
            params.append(value)
    if start_time:
        where.append("l.create_time >= ?")
        params.append(start_time)
    if end_time:
        where.append("l.create_time < ?")
        params.append(end_time)
    for subject in subjects:
        where.append(
            "EXISTS (SELECT 1 FROM audit_subjects s WHERE s.leaf_index = l.leaf_index"
            " AND s.subject = ?)"
        )
        params.append(subject)
    if any_subject:
        marks = ", ".join("?" for _ in any_subject)
        where.append(
            "EXISTS (SELECT 1 FROM audit_subjects s WHERE s.leaf_index = l.leaf_index"
            f" AND s.subject IN ({marks}))"
        )
        params.extend(any_subject)
    params.append(limit)
    return rows(
        conn.execute(
            f"SELECT l.leaf_index, l.record FROM audit_leaves l WHERE {' AND '.join(where)}"
            " ORDER BY l.leaf_index LIMIT ?",
            params,
        )
    )
