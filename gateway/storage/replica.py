"""SQL for what members of a national network replicate from each other: the changes this
gateway serves (`network_changes`, kept by triggers on `agencies` and `datasets`, in the history
`network_epoch` names), and the agencies and datasets it pulled from the other members
(`replica_*`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from gateway.models import Agency, Dataset, NetworkChange
from gateway.storage import catalog, directory
from gateway.storage.database import first


def changes(conn: sqlite3.Connection, since: int, limit: int) -> Iterator[NetworkChange]:
    """The latest change of each agency and dataset after position `since`, oldest first, with
    the agency or dataset as it is now (a dataset with its latest signed manifest and its
    replication id)."""
    rows = conn.execute(
        "SELECT c.position, c.kind, c.key, n.replication_id FROM network_changes c"
        " LEFT JOIN network_datasets n ON c.kind = 'dataset' AND n.name = c.key"
        " WHERE c.position > ? ORDER BY c.position LIMIT ?", (since, limit)).fetchall()
    for position, kind, key, replication_id in rows:
        if kind == "agency":
            yield NetworkChange(position, agency=directory.get_agency(conn, key))
        else:
            yield NetworkChange(position, dataset=catalog.get_dataset(conn, key),
                                replication_id=replication_id)


def epoch(conn: sqlite3.Connection) -> str:
    """The history this gateway's change positions count in."""
    return conn.execute("SELECT epoch FROM network_epoch").fetchone()[0]


def new_epoch(conn: sqlite3.Connection) -> None:
    """Begin a new history: the database may be an older copy, whose positions the other
    members already passed with changes it does not hold."""
    conn.execute("UPDATE network_epoch SET epoch = lower(hex(randomblob(16)))")


def replica_agency(conn: sqlite3.Connection, agency_id: str) -> Agency | None:
    return first(conn.execute(
        "SELECT id, display_name, region_code, signing_certificate_pem, signing_key_id, state,"
        " suspend_reason, create_time, update_time, previous_signing_certificates,"
        " member AS network_member FROM replica_agencies WHERE id = ?", (agency_id,)), Agency)


def put_agency(conn: sqlite3.Connection, agency: Agency) -> None:
    """Insert or replace the replica of `agency` (its network_member the member it came from)."""
    conn.execute(
        "INSERT OR REPLACE INTO replica_agencies (id, member, display_name, region_code,"
        " signing_certificate_pem, signing_key_id, state, suspend_reason, create_time,"
        " update_time, previous_signing_certificates) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (agency.id, agency.network_member, agency.display_name, agency.region_code,
         agency.signing_certificate_pem, agency.signing_key_id, agency.state,
         agency.suspend_reason, agency.create_time, agency.update_time,
         agency.previous_signing_certificates))


def put_dataset(conn: sqlite3.Connection, dataset: Dataset, tags: Sequence[str],
                replication_id: str) -> None:
    """Insert or update the replica of `dataset` (its network_member the member it came from),
    its tag rows and search text with it; a dataset keeps its place in the listing (its seq)."""
    conn.execute(
        "INSERT INTO replica_datasets (name, replication_id, member, publisher, region_code,"
        " latest_version, state, withdraw_reason, classification, sharing_type, title,"
        " abstract, tags, field_names, create_time, update_time, signed_manifest)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE"
        " SET replication_id = excluded.replication_id, member = excluded.member,"
        " latest_version = excluded.latest_version,"
        " state = excluded.state, withdraw_reason = excluded.withdraw_reason,"
        " classification = excluded.classification, sharing_type = excluded.sharing_type,"
        " title = excluded.title, abstract = excluded.abstract, tags = excluded.tags,"
        " field_names = excluded.field_names, update_time = excluded.update_time,"
        " signed_manifest = excluded.signed_manifest",
        (dataset.name, replication_id, dataset.network_member, dataset.publisher,
         dataset.region_code, dataset.latest_version, dataset.state, dataset.withdraw_reason,
         dataset.classification, dataset.sharing_type, dataset.title, dataset.abstract,
         dataset.tags, dataset.field_names, dataset.create_time, dataset.update_time,
         dataset.signed_manifest))
    seq = conn.execute("SELECT seq FROM replica_datasets WHERE name = ?",
                       (dataset.name,)).fetchone()[0]
    conn.execute("DELETE FROM replica_dataset_tags WHERE dataset_seq = ?", (seq,))
    conn.executemany("INSERT INTO replica_dataset_tags (tag, dataset_seq) VALUES (?, ?)",
                     [(tag, seq) for tag in tags])
    catalog.index_search_text(conn, seq, [getattr(dataset, c) for c in catalog.SEARCHED],
                              "replica_datasets_fts")


def remove_dataset(conn: sqlite3.Connection, member: str, replication_id: str) -> None:
    """Drop `member`'s replicated dataset of that replication id, if held."""
    _drop_datasets(conn, "member = ? AND replication_id = ?", (member, replication_id))


def drop_member(conn: sqlite3.Connection, member: str) -> None:
    """Drop every agency and dataset replicated from `member`."""
    _drop_datasets(conn, "member = ?", (member,))
    conn.execute("DELETE FROM replica_agencies WHERE member = ?", (member,))


def members(conn: sqlite3.Connection) -> list[str]:
    """The members anything was taken from: agencies, datasets or a position."""
    return [row[0] for row in conn.execute(
        "SELECT member FROM replica_agencies UNION SELECT member FROM replica_datasets"
        " UNION SELECT member FROM replica_positions ORDER BY member")]


def forget_member(conn: sqlite3.Connection, member: str) -> tuple[int, int]:
    """Drop all that was taken from `member`, its position too (were it to come back, its
    changes would be taken anew); how many agencies and datasets were dropped."""
    counts = tuple(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE member = ?",
                                (member,)).fetchone()[0]
                   for table in ("replica_agencies", "replica_datasets"))
    drop_member(conn, member)
    conn.execute("DELETE FROM replica_positions WHERE member = ?", (member,))
    return counts[0], counts[1]


def _drop_datasets(conn: sqlite3.Connection, where: str, params: tuple[str, ...]) -> None:
    seqs = conn.execute(f"SELECT seq FROM replica_datasets WHERE {where}", params).fetchall()
    for table, column in (("replica_dataset_tags", "dataset_seq"),
                          ("replica_datasets_fts", "rowid"), ("replica_datasets", "seq")):
        conn.executemany(f"DELETE FROM {table} WHERE {column} = ?", seqs)


def position(conn: sqlite3.Connection, member: str) -> tuple[str, int]:
    """The epoch of `member` taken last and how far its changes were taken in it ("", 0:
    none yet)."""
    row = conn.execute("SELECT epoch, position FROM replica_positions WHERE member = ?",
                       (member,)).fetchone()
    return (row[0], row[1]) if row else ("", 0)


def set_position(conn: sqlite3.Connection, member: str, epoch: str, taken: int) -> None:
    conn.execute("INSERT OR REPLACE INTO replica_positions (member, epoch, position)"
                 " VALUES (?, ?, ?)", (member, epoch, taken))
