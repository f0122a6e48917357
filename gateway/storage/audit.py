"""SQL for the audit log: leaves, tree nodes and checkpoints.

Tree nodes are keyed by `merkle.stored_index`, their append order: a batch's new nodes land
at the end of one B-tree (keyed by level first, they touched a page per level), and the nodes
under an aligned range of leaves are one range of keys.

A leaf row keeps the record's subjects (the agencies and datasets it concerns) framed as
"\nname\nname\n", so that "concerns X" is a substring test for "\nX\n": names never hold
control characters (`record.Event` leaves such names out of its subjects).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gateway.audit.merkle import Coord, stored_index
from gateway.storage.database import first, rows

_MAX_PARAMS = 30_000
"""Bound parameters per statement (SQLite allows 32,766)."""


def tree_size(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(leaf_index) FROM audit_leaves").fetchone()
    return 0 if row[0] is None else row[0] + 1


def frame(subjects: Sequence[str]) -> str:
    """The stored form of a leaf's subjects."""
    return "\n" + "\n".join(subjects) + "\n" if subjects else ""


def insert_leaves(conn: sqlite3.Connection, leaves: Sequence[tuple[Any, ...]]) -> None:
    """Rows of (leaf_index, record, create_time, actor, action, outcome, framed subjects)."""
    conn.executemany(
        "INSERT INTO audit_leaves"
        " (leaf_index, record, create_time, actor, action, outcome, subjects)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        leaves,
    )


def insert_nodes(conn: sqlite3.Connection, nodes: Sequence[tuple[int, int, bytes]]) -> None:
    """Rows of (level, idx, hash) for perfect subtrees completed by an append."""
    conn.executemany("INSERT INTO tree_nodes (id, hash) VALUES (?, ?)",
                     [(stored_index(level, idx), digest) for level, idx, digest in nodes])


def hashes_at(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, bytes]:
    """The stored node hashes among `ids` (merkle.stored_index), by id."""
    found: dict[int, bytes] = {}
    for start in range(0, len(ids), _MAX_PARAMS):
        part = ids[start:start + _MAX_PARAMS]
        marks = ", ".join("?" for _ in part)
        found.update(conn.execute(f"SELECT id, hash FROM tree_nodes WHERE id IN ({marks})", part))
    return found


def hashes_between(conn: sqlite3.Connection, begin: int, end: int) -> dict[int, bytes]:
    """Every stored node hash with id in [begin, end), by id (one range of the B-tree)."""
    return dict(conn.execute("SELECT id, hash FROM tree_nodes WHERE id >= ? AND id < ?",
                             (begin, end)))


def fetch_nodes(conn: sqlite3.Connection, coords: Sequence[Coord]) -> list[bytes]:
    """The hashes of the perfect subtrees at `coords`, in order, in one query."""
    ids = [stored_index(level, idx) for level, idx in coords]
    found = hashes_at(conn, ids)
    missing = [coord for coord, id_ in zip(coords, ids, strict=True) if id_ not in found]
    if missing:
        raise LookupError(f"tree nodes missing from storage: {missing[:4]}")
    return [found[id_] for id_ in ids]


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


def _concerns_any(subjects: Sequence[str]) -> tuple[str, list[str]]:
    """A condition on leaf `l` naming at least one of `subjects`, and its parameters."""
    clause = " OR ".join("instr(l.subjects, ?) > 0" for _ in subjects)
    return f"({clause})", [frame([subject]) for subject in subjects]


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
    visibility rule for an agency: an agency is a subject of its own actions too).
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
    for group in [*([subject] for subject in subjects), *([any_subject] if any_subject else [])]:
        clause, values = _concerns_any(group)
        where.append(clause)
        params.extend(values)
    params.append(limit)
    return rows(
        conn.execute(
            f"SELECT l.leaf_index, l.record FROM audit_leaves l WHERE {' AND '.join(where)}"
            " ORDER BY l.leaf_index LIMIT ?",
            params,
        )
    )


# -- reading for verification, listings and tools ----------------------------------------------


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to an existing database file (for offline tools)."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"no database at {resolved}")
    conn = sqlite3.connect(f"{resolved.as_uri()}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA query_only=ON")
    return conn


def leaf_visible(conn: sqlite3.Connection, leaf_index: int, subjects: Sequence[str]) -> bool:
    """Whether the leaf exists and names one of `subjects` (an agency's view)."""
    where, values = _concerns_any(subjects)
    row = conn.execute(
        f"SELECT 1 FROM audit_leaves l WHERE l.leaf_index = ? AND {where}",
        [leaf_index, *values],
    ).fetchone()
    return row is not None


def records_between(conn: sqlite3.Connection, begin: int, end: int) -> list[tuple[int, bytes]]:
    """(leaf_index, record) for leaf_index in [begin, end), in order."""
    return conn.execute(
        "SELECT leaf_index, record FROM audit_leaves WHERE leaf_index >= ? AND leaf_index < ?"
        " ORDER BY leaf_index",
        (begin, end),
    ).fetchall()


def first_leaf_from(conn: sqlite3.Connection, leaf_index: int) -> int | None:
    """The smallest stored leaf index at or after `leaf_index` (or before 0), if any."""
    row = conn.execute(
        "SELECT MIN(leaf_index) FROM audit_leaves WHERE leaf_index >= ? OR leaf_index < 0",
        (leaf_index,),
    ).fetchone()
    return row[0]


def first_node_from(conn: sqlite3.Connection, begin: int) -> int | None:
    """The smallest stored node id at or after `begin` (or below 0), if any."""
    return conn.execute("SELECT MIN(id) FROM tree_nodes WHERE id >= ? OR id < 0",
                        (begin,)).fetchone()[0]


def index_mismatches(conn: sqlite3.Connection, limit: int = 100) -> list[tuple[int, str]]:
    """Leaves whose filter columns disagree with their record bytes.

    The record is what the tree commits to; the columns only serve listings and agency
    visibility, so a column edited there would hide or misattribute an event. One pass over the
    records (SQLite parses each once and caches it for the json_* calls).
    """
    return conn.execute(
        """
        SELECT leaf_index, 'columns' FROM (
            SELECT leaf_index, CAST(record AS TEXT) AS doc, actor, action, outcome, create_time,
                   subjects
              FROM audit_leaves) AS r
         WHERE json_valid(doc) AND (
               actor IS NOT json_extract(doc, '$.actor')
            OR action IS NOT json_extract(doc, '$.action')
            OR outcome IS NOT json_extract(doc, '$.outcome')
            OR create_time IS NOT json_extract(doc, '$.time')
            OR subjects IS NOT coalesce(
                   (SELECT char(10) || group_concat(value, char(10)) || char(10)
                      FROM json_each(doc, '$.subjects')), ''))
         ORDER BY leaf_index LIMIT ?
        """,
        (limit,),
    ).fetchall()
