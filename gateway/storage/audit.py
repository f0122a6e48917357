"""SQL for the audit log: leaves, tree nodes, checkpoints and the subject index.

Tree nodes are keyed by `merkle.stored_index`, their append order: a batch's new nodes land
at the end of one B-tree (keyed by level first, they touched a page per level), and the nodes
under an aligned range of leaves are one range of keys.

A leaf row keeps the record's subjects (the agencies and datasets it concerns) framed as
"\nname\nname\n", so that "concerns X" is a substring test for "\nX\n": names never hold
control characters (`record.Event` leaves such names out of its subjects). The subject index
maps each subject to its leaves, filled by the committer between batches up to a recorded leaf.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.models import AuditLeaf, Checkpoint
from gateway.storage.database import every, first
from govshare.transparency.merkle import Coord, stored_index

_MAX_PARAMS = 30_000
"""Bound parameters per statement (SQLite allows 32,766)."""


def tree_size(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(leaf_index) FROM audit_leaves").fetchone()
    return 0 if row[0] is None else row[0] + 1


def frame(subjects: Sequence[str]) -> str:
    """The stored form of a leaf's subjects."""
    return "\n" + "\n".join(subjects) + "\n" if subjects else ""


def insert_leaves(conn: sqlite3.Connection, leaves: Sequence[AuditLeaf]) -> None:
    conn.executemany(
        "INSERT INTO audit_leaves"
        " (leaf_index, record, create_time, actor, action, outcome, subjects)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(leaf.leaf_index, leaf.record, leaf.create_time, leaf.actor, leaf.action, leaf.outcome,
          leaf.subjects) for leaf in leaves],
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


def insert_checkpoint(conn: sqlite3.Connection, checkpoint: Checkpoint) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO checkpoints (tree_size, root_hash, note, create_time)"
        " VALUES (?, ?, ?, ?)",
        (checkpoint.tree_size, checkpoint.root_hash, checkpoint.note, checkpoint.create_time),
    )


def latest_checkpoint(conn: sqlite3.Connection) -> Checkpoint | None:
    return first(conn.execute("SELECT * FROM checkpoints ORDER BY tree_size DESC LIMIT 1"),
                 Checkpoint)


def checkpoint_at(conn: sqlite3.Connection, tree_size: int) -> Checkpoint | None:
    return first(conn.execute("SELECT * FROM checkpoints WHERE tree_size = ?", (tree_size,)),
                 Checkpoint)


def checkpoints(conn: sqlite3.Connection) -> list[Checkpoint]:
    """Every stored checkpoint, oldest first."""
    return every(conn.execute("SELECT * FROM checkpoints ORDER BY tree_size"), Checkpoint)


def checkpoint_origins(conn: sqlite3.Connection) -> set[str]:
    """The origins (first lines) the stored checkpoints name."""
    found = conn.execute("SELECT DISTINCT substr(note, 1, instr(note, X'0A') - 1)"
                         " FROM checkpoints")
    return {bytes(origin).decode(errors="replace") for (origin,) in found}


def records_of_action(conn: sqlite3.Connection, action: str) -> list[tuple[int, bytes]]:
    """(leaf_index, record) of every leaf with `action`, in order."""
    return conn.execute("SELECT leaf_index, record FROM audit_leaves WHERE action = ?"
                        " ORDER BY leaf_index", (action,)).fetchall()


def get_leaf(conn: sqlite3.Connection, leaf_index: int) -> AuditLeaf | None:
    return first(conn.execute("SELECT * FROM audit_leaves WHERE leaf_index = ?", (leaf_index,)),
                 AuditLeaf)


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


def _refusals_seen_by(viewer: tuple[str, str]) -> tuple[str, list[str]]:
    """A condition on leaf `l` for `viewer`, an agency's (identity URI, agency name): carried
    out, or refused either to the agency itself or in an attempt on one of its datasets. A
    refusal answers the caller, and may tell it what only it may know (an owner's refused
    approval names the schema or terms of its dataset), so it is not shown to the other
    agencies it names."""
    actor, agency = viewer
    return ("(l.outcome != 'REFUSED' OR l.actor = ? OR instr(l.subjects, ?) > 0)",
            [actor, f"\n{agency}/datasets/"])


def subjects_indexed_upto(conn: sqlite3.Connection) -> int:
    """The first leaf the subject index does not cover yet."""
    return conn.execute("SELECT upto FROM audit_subject_index_state").fetchone()[0]


def index_subjects(conn: sqlite3.Connection, upto: int, limit: int) -> int:
    """Index the subjects of at most `limit` leaves from `upto` on, in the caller's
    transaction; the new `upto`. Rows go in sorted by subject, so a step of many leaves
    touches about one page per subject."""
    found = conn.execute(
        "SELECT leaf_index, subjects FROM audit_leaves WHERE leaf_index >= ?"
        " ORDER BY leaf_index LIMIT ?",
        (upto, limit),
    ).fetchall()
    if not found:
        return upto
    pairs = sorted((name, leaf) for leaf, framed in found for name in framed.split("\n") if name)
    conn.executemany("INSERT INTO audit_subject_index (subject, leaf_index) VALUES (?, ?)", pairs)
    upto = found[-1][0] + 1
    conn.execute("UPDATE audit_subject_index_state SET upto = ?", (upto,))
    return upto


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
    refusals_seen_by: tuple[str, str] | None = None,
    start_time: str = "",
    end_time: str = "",
) -> list[AuditLeaf]:
    """Leaves with leaf_index > after matching every filter, oldest first.

    `subjects`: the leaf must concern each of these; `any_subject`: at least one of these (the
    visibility rule for an agency: an agency is a subject of its own actions too);
    `refusals_seen_by`: an agency's (identity URI, agency name), to leave out the refusals it
    may not read. With a subject to go by, the indexed leaves are read through the subject
    index and only the rest (the leaves the committer has not indexed yet) are scanned.
    """
    where = ["1"]
    params: list[Any] = []
    if refusals_seen_by:
        clause, values = _refusals_seen_by(refusals_seen_by)
        where.append(clause)
        params.extend(values)
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
    condition = " AND ".join(where)
    found: list[AuditLeaf] = []
    driving = subjects[:1] or (any_subject if len(any_subject) == 1 else ())
    if driving and after + 1 < (upto := subjects_indexed_upto(conn)):
        found = every(conn.execute(
            "SELECT l.* FROM audit_subject_index i"
            " JOIN audit_leaves l ON l.leaf_index = i.leaf_index"
            f" WHERE i.subject = ? AND i.leaf_index > ? AND i.leaf_index < ? AND {condition}"
            " ORDER BY i.leaf_index LIMIT ?",
            [driving[0], after, upto, *params, limit],
        ), AuditLeaf)
        after = upto - 1
    if len(found) < limit:
        found += every(conn.execute(
            f"SELECT l.* FROM audit_leaves l WHERE l.leaf_index > ?"
            f" AND {condition} ORDER BY l.leaf_index LIMIT ?",
            [after, *params, limit - len(found)],
        ), AuditLeaf)
    return found


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


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the reads inside on one snapshot of the database. In WAL mode each autocommit
    SELECT sees the log as of its own moment, so a checkpoint read before the gateway's next
    commit and records read after it would disagree; a read transaction pins one moment (and
    keeps the WAL from being checkpointed past it, so hold it no longer than the reads)."""
    if conn.in_transaction:  # the caller's transaction is a snapshot already
        yield conn
        return
    conn.execute("BEGIN")  # deferred: the first read fixes the snapshot, no lock is taken
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def leaf_visible(conn: sqlite3.Connection, leaf_index: int, viewer: tuple[str, str]) -> bool:
    """Whether the leaf exists and agency `viewer` (identity URI, agency name) may read it:
    it names the agency, and is not a refusal kept from it (`_refusals_seen_by`)."""
    where, values = _concerns_any([viewer[1]])
    refused, params = _refusals_seen_by(viewer)
    row = conn.execute(
        f"SELECT 1 FROM audit_leaves l WHERE l.leaf_index = ? AND {where} AND {refused}",
        [leaf_index, *values, *params],
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


def subject_index_mismatches(conn: sqlite3.Connection,
                             limit: int = 100) -> list[tuple[int, str]]:
    """Leaves the subject index misses or misattributes, up to where it claims to cover.

    An index row missing hides the event from that subject's listing, an extra one shows it
    to a subject it does not concern. Every (subject, leaf) pair a covered record names must be
    indexed; the count then tells whether anything else is (and only then are the extra rows
    looked for). A record that is not JSON names no subjects (verify reports it as modified)."""
    upto = subjects_indexed_upto(conn)
    named = f"""
        (SELECT l.leaf_index, j.value AS subject FROM audit_leaves l, json_each(
             CASE WHEN json_valid(CAST(l.record AS TEXT)) THEN CAST(l.record AS TEXT)
                  ELSE '{{}}' END, '$.subjects') j
          WHERE l.leaf_index < {int(upto)})"""
    absent = """NOT EXISTS (SELECT 1 FROM audit_subject_index i
                             WHERE i.subject = n.subject AND i.leaf_index = n.leaf_index)"""
    expected, missing = conn.execute(  # one pass over the records when all is well
        f"SELECT count(*), coalesce(max({absent}), 0) FROM {named} n").fetchone()
    if missing:
        return conn.execute(
            f"SELECT n.leaf_index, 'subject index' FROM {named} n WHERE {absent}"
            " ORDER BY n.leaf_index LIMIT ?",
            (limit,),
        ).fetchall()
    if conn.execute("SELECT count(*) FROM audit_subject_index").fetchone()[0] == expected:
        return []
    return conn.execute(
        f"""
        SELECT i.leaf_index, 'subject index' FROM audit_subject_index i
         WHERE NOT EXISTS (SELECT 1 FROM {named} n
                            WHERE n.leaf_index = i.leaf_index AND n.subject = i.subject)
         ORDER BY i.leaf_index LIMIT ?
        """,
        (limit,),
    ).fetchall()
