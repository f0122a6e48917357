"""SQL for what members of a national network replicate from each other: the changes this
gateway serves (`network_changes`, kept by triggers on `agencies` and `datasets`), and the
agencies and datasets it pulled from the other members (`replica_*`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from gateway.models import Agency, Dataset, NetworkChange
from gateway.storage import catalog, directory
from gateway.storage.database import first


def changes(conn: sqlite3.Connection, since: int, limit: int) -> Iterator[NetworkChange]:
    """The latest change of each agency and dataset after position `since`, oldest first, with
    the agency or dataset as it is now (a dataset with its latest signed manifest)."""
    rows = conn.execute("SELECT position, kind, key FROM network_changes WHERE position > ?"
                        " ORDER BY position LIMIT ?", (since, limit)).fetchall()
    for position, kind, key in rows:
        if kind == "agency":
            yield NetworkChange(position, agency=directory.get_agency(conn, key))
        else:
            yield NetworkChange(position, dataset=catalog.get_dataset(conn, key))


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


def put_dataset(conn: sqlite3.Connection, dataset: Dataset, name_sha256: str) -> None:
    """Insert or update the replica of `dataset` (its network_member the member it came from),
    its search text with it; a dataset keeps its place in the listing (its seq)."""
    conn.execute(
        "INSERT INTO replica_datasets (name, name_sha256, member, publisher, region_code,"
        " latest_version, state, withdraw_reason, classification, sharing_type, title,"
        " abstract, tags, field_names, create_time, update_time, signed_manifest)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE"
        " SET member = excluded.member, latest_version = excluded.latest_version,"
        " state = excluded.state, withdraw_reason = excluded.withdraw_reason,"
        " classification = excluded.classification, sharing_type = excluded.sharing_type,"
        " title = excluded.title, abstract = excluded.abstract, tags = excluded.tags,"
        " field_names = excluded.field_names, update_time = excluded.update_time,"
        " signed_manifest = excluded.signed_manifest",
        (dataset.name, name_sha256, dataset.network_member, dataset.publisher,
         dataset.region_code, dataset.latest_version, dataset.state, dataset.withdraw_reason,
         dataset.classification, dataset.sharing_type, dataset.title, dataset.abstract,
         dataset.tags, dataset.field_names, dataset.create_time, dataset.update_time,
         dataset.signed_manifest))
    seq = conn.execute("SELECT seq FROM replica_datasets WHERE name = ?",
                       (dataset.name,)).fetchone()[0]
    catalog.index_search_text(conn, seq, [getattr(dataset, c) for c in catalog.SEARCHED],
                              "replica_datasets_fts")


def remove_dataset(conn: sqlite3.Connection, member: str, name_sha256: str) -> None:
    """Drop `member`'s replicated dataset whose name has that hex SHA-256, if held."""
    row = conn.execute("SELECT seq FROM replica_datasets WHERE member = ? AND name_sha256 = ?",
                       (member, name_sha256)).fetchone()
    if row is not None:
        conn.execute("DELETE FROM replica_datasets_fts WHERE rowid = ?", row)
        conn.execute("DELETE FROM replica_datasets WHERE seq = ?", row)


def position(conn: sqlite3.Connection, member: str) -> int:
    """How far `member`'s changes were taken (0: none yet)."""
    row = conn.execute("SELECT position FROM replica_positions WHERE member = ?",
                       (member,)).fetchone()
    return row[0] if row else 0


def set_position(conn: sqlite3.Connection, member: str, taken: int) -> None:
    conn.execute("INSERT OR REPLACE INTO replica_positions (member, position) VALUES (?, ?)",
                 (member, taken))
