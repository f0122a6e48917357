"""SQL for witnessing: the logs this gateway witnesses, the cosignatures the other members gave
this gateway's checkpoints, and the evidence of forks and equivocations it found, comparing
what its peers cosigned or as a witness. (Table witness_refusals, migration 0019, held the
notes refused before; nothing writes it any more.)"""

from __future__ import annotations

import dataclasses
import sqlite3

from gateway.models import Cosignature, Evidence, WitnessedLog
from gateway.storage.database import every, first


def witnessed_log(conn: sqlite3.Connection, origin: str) -> WitnessedLog | None:
    return first(conn.execute("SELECT * FROM witnessed_logs WHERE origin = ?", (origin,)),
                 WitnessedLog)


def witnessed_logs(conn: sqlite3.Connection, after: str, limit: int) -> list[WitnessedLog]:
    """The logs of origin after `after` whose last cosignature is kept, by origin."""
    return every(conn.execute("SELECT * FROM witnessed_logs WHERE origin > ? AND cosignature"
                              " != '' ORDER BY origin LIMIT ?", (after, limit)), WitnessedLog)


def record_cosigned(conn: sqlite3.Connection, log: WitnessedLog) -> None:
    conn.execute(
        "INSERT INTO witnessed_logs (origin, tree_size, root_hash, checkpoint, update_time,"
        " cosignature) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET tree_size ="
        " excluded.tree_size, root_hash = excluded.root_hash, checkpoint = excluded.checkpoint,"
        " update_time = excluded.update_time, cosignature = excluded.cosignature",
        (log.origin, log.tree_size, log.root_hash, log.checkpoint, log.update_time,
         log.cosignature))


def insert_evidence(conn: sqlite3.Connection, evidence: Evidence, at_most: int) -> bool:
    """Keep `evidence` unless its pair is kept, or `at_most` of its subject are; whether it
    was kept."""
    return conn.execute(
        "INSERT INTO network_evidence (kind, subject, member, first, first_from, second,"
        " second_from, pair, reason, create_time) SELECT :kind, :subject, :member, :first,"
        " :first_from, :second, :second_from, :pair, :reason, :create_time WHERE NOT EXISTS"
        " (SELECT 1 FROM network_evidence WHERE pair = :pair) AND (SELECT COUNT(*) FROM"
        " network_evidence WHERE subject = :subject) < :at_most",
        {**dataclasses.asdict(evidence), "at_most": at_most}).rowcount == 1


def evidence(conn: sqlite3.Connection) -> list[Evidence]:
    """Every pair kept, oldest first."""
    return every(conn.execute(
        "SELECT kind, subject, member, first, first_from, second, second_from, pair, reason,"
        " create_time FROM network_evidence ORDER BY id"), Evidence)


def insert_cosignature(conn: sqlite3.Connection, cosignature: Cosignature) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO cosignatures (origin, tree_size, witness, line, create_time)"
        " VALUES (?, ?, ?, ?, ?)",
        (cosignature.origin, cosignature.tree_size, cosignature.witness, cosignature.line,
         cosignature.create_time))


def cosignatures(conn: sqlite3.Connection, origin: str, tree_size: int) -> list[Cosignature]:
    """The cosignatures of the checkpoint of `origin` and `tree_size`, by witness."""
    return every(conn.execute("SELECT * FROM cosignatures WHERE origin = ? AND tree_size = ?"
                              " ORDER BY witness", (origin, tree_size)), Cosignature)


def latest_cosigned_sizes(conn: sqlite3.Connection, origin: str) -> dict[str, int]:
    """The largest tree size of `origin` each witness cosigned."""
    return dict(conn.execute("SELECT witness, MAX(tree_size) FROM cosignatures"
                             " WHERE origin = ? GROUP BY witness", (origin,)))


def latest_cosigned_size(conn: sqlite3.Connection, origin: str) -> int | None:
    """The size of the latest checkpoint of `origin` any witness cosigned, None if none is."""
    return conn.execute("SELECT MAX(tree_size) FROM cosignatures WHERE origin = ?",
                        (origin,)).fetchone()[0]


def refusal_records(conn: sqlite3.Connection, action: str, since: str,
                    limit: int) -> list[bytes]:
    """The records of the REFUSED audit events of `action` created at `since` or later, the
    latest `limit` of them."""
    return [row[0] for row in conn.execute(
        "SELECT record FROM audit_leaves WHERE action = ? AND outcome = 'REFUSED' AND"
        " create_time >= ? ORDER BY leaf_index DESC LIMIT ?", (action, since, limit))]
