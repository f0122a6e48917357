"""SQL for the directory of agencies."""

from __future__ import annotations

import sqlite3

from gateway.models import Agency
from gateway.storage.database import every, first, insert


def get_agency(conn: sqlite3.Connection, agency_id: str) -> Agency | None:
    return first(conn.execute("SELECT * FROM agencies WHERE id = ?", (agency_id,)), Agency)


def replica_member(conn: sqlite3.Connection, agency_id: str) -> str | None:
    """The other member of the network `agency_id` was replicated from, if any."""
    row = conn.execute("SELECT member FROM replica_agencies WHERE id = ?", (agency_id,)).fetchone()
    return row[0] if row else None


def get_agency_by_key_id(conn: sqlite3.Connection, key_id: str) -> Agency | None:
    return first(conn.execute("SELECT * FROM agencies WHERE signing_key_id = ?", (key_id,)), Agency)


_AGENCY_COLUMNS = ("id, display_name, region_code, signing_certificate_pem, signing_key_id,"
                   " state, suspend_reason, create_time, update_time,"
                   " previous_signing_certificates")


def list_agencies(
    conn: sqlite3.Connection, *, after: str, limit: int, region_prefix: str = ""
) -> list[Agency]:
    """Agencies with id > after, ordered by id, this gateway's and those replicated from the
    other members of its network alike; region_prefix matches region codes by prefix."""
    where = "WHERE id > ? AND region_code LIKE ?"
    return every(
        conn.execute(
            f"SELECT {_AGENCY_COLUMNS}, '' AS network_member FROM agencies {where}"
            f" UNION ALL SELECT {_AGENCY_COLUMNS}, member AS network_member"
            f" FROM replica_agencies {where} ORDER BY id LIMIT ?",
            (after, region_prefix + "%", after, region_prefix + "%", limit),
        ),
        Agency,
    )


def insert_agency(conn: sqlite3.Connection, agency: Agency) -> None:
    insert(conn, "agencies", agency, skip=("network_member",))


def set_agency_state(
    conn: sqlite3.Connection, agency_id: str, state: str, reason: str, when: str
) -> None:
    conn.execute(
        "UPDATE agencies SET state = ?, suspend_reason = ?, update_time = ? WHERE id = ?",
        (state, reason, when, agency_id),
    )


def replace_signing_certificate(
    conn: sqlite3.Connection, agency_id: str, pem: str, key_id: str, previous: str, when: str
) -> None:
    """Make `pem` the agency's signing certificate; `previous` is the JSON array of the ones
    it had before."""
    conn.execute(
        "UPDATE agencies SET signing_certificate_pem = ?, signing_key_id = ?,"
        " previous_signing_certificates = ?, update_time = ? WHERE id = ?",
        (pem, key_id, previous, when, agency_id),
    )
