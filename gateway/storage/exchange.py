"""SQL for access requests, grants and exchanges.

Two states are derived when reading rather than stored: a grant past its expire_time reads as
EXPIRED, and an APPROVED request whose grant has expired reads as EXPIRED. `effective_state`
carries the derived value; `state` stays what was written.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.storage.database import first, insert, rows

_REQUEST_SELECT = """
    SELECT r.*, CASE WHEN r.state = 'APPROVED' AND g.expire_time <= :now THEN 'EXPIRED'
                     ELSE r.state END AS effective_state
    FROM access_requests r LEFT JOIN grants g ON g.name = r.grant_name"""

_GRANT_SELECT = """
    SELECT g.*, CASE WHEN g.state = 'ACTIVE' AND g.expire_time <= :now THEN 'EXPIRED'
                     ELSE g.state END AS effective_state
    FROM grants g"""

_MAX_SEQ = 2**63 - 1


# -- access requests -----------------------------------------------------------------------------


def insert_access_request(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    insert(conn, "access_requests", row)


def get_access_request(conn: sqlite3.Connection, name: str, now: str) -> dict[str, Any] | None:
    return first(conn.execute(f"{_REQUEST_SELECT} WHERE r.name = :name",
                              {"name": name, "now": now}))


def find_by_request_id(
    conn: sqlite3.Connection, requester: str, request_id: str, now: str
) -> dict[str, Any] | None:
    """The access request `requester` (agency id) made with idempotency key `request_id`."""
    return first(conn.execute(
        f"{_REQUEST_SELECT} WHERE r.requester = :requester AND r.request_id = :request_id",
        {"requester": requester, "request_id": request_id, "now": now},
    ))


def decide_access_request(
    conn: sqlite3.Connection, name: str, *, state: str, reason: str,
    signed_decision: bytes | None, grant_name: str | None, when: str,
) -> None:
    """Close a request: decided by the owner, or withdrawn by its requester (no decision)."""
    conn.execute(
        "UPDATE access_requests SET state = ?, state_reason = ?, signed_decision = ?,"
        " grant_name = ?, decide_time = ? WHERE name = ?",
        (state, reason, signed_decision, grant_name, when, name),
    )


def list_access_requests(
    conn: sqlite3.Connection, *, agency: str, incoming: bool, state: str, overdue_only: bool,
    dataset: str, now: str, before: int | None, limit: int,
) -> list[dict[str, Any]]:
    """Requests to (incoming) or from an agency id, newest first, with seq below `before`."""
    side = "owner" if incoming else "requester"
    clauses = [f"r.{side} = :agency", "r.seq < :before"]
    if state:
        clauses.append("effective_state = :state")
    if overdue_only:
        clauses.append("r.state = 'PENDING' AND r.decide_deadline < :now")
    if dataset:
        clauses.append("r.dataset = :dataset")
    return rows(conn.execute(
        f"{_REQUEST_SELECT} WHERE {' AND '.join(clauses)} ORDER BY r.seq DESC LIMIT :limit",
        {"agency": agency, "before": _MAX_SEQ if before is None else before, "state": state,
         "now": now, "dataset": dataset, "limit": limit},
    ))


# -- grants --------------------------------------------------------------------------------------


def insert_grant(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    insert(conn, "grants", row)


def get_grant(conn: sqlite3.Connection, name: str, now: str) -> dict[str, Any] | None:
    return first(conn.execute(f"{_GRANT_SELECT} WHERE g.name = :name",
                              {"name": name, "now": now}))


def active_grants(
    conn: sqlite3.Connection, grantee: str, dataset: str, now: str
) -> list[dict[str, Any]]:
    """The grantee's (agency id) unexpired ACTIVE grants on `dataset`, longest lasting first."""
    return rows(conn.execute(
        f"{_GRANT_SELECT} WHERE g.grantee = :grantee AND g.dataset = :dataset"
        " AND g.state = 'ACTIVE' AND g.expire_time > :now ORDER BY g.expire_time DESC",
        {"grantee": grantee, "dataset": dataset, "now": now},
    ))


def grant_usable(conn: sqlite3.Connection, name: str, now: str) -> str:
    """The grant's effective state in one indexed lookup (for checks during a fetch)."""
    found = conn.execute(
        "SELECT CASE WHEN state = 'ACTIVE' AND expire_time <= ? THEN 'EXPIRED' ELSE state END"
        " FROM grants WHERE name = ?", (now, name),
    ).fetchone()
    return found[0] if found else "MISSING"


def revoke_grant(conn: sqlite3.Connection, name: str, reason: str, when: str) -> None:
    conn.execute(
        "UPDATE grants SET state = 'REVOKED', revoke_time = ?, revoke_reason = ? WHERE name = ?",
        (when, reason, name),
    )


def list_grants(
    conn: sqlite3.Connection, *, agency: str, incoming: bool, state: str, dataset: str,
    now: str, before: int | None, limit: int,
) -> list[dict[str, Any]]:
    """Grants given by (incoming) or held by an agency id, newest first."""
    side = "owner" if incoming else "grantee"
    clauses = [f"g.{side} = :agency", "g.seq < :before"]
    if state:
        clauses.append("effective_state = :state")
    if dataset:
        clauses.append("g.dataset = :dataset")
    return rows(conn.execute(
        f"{_GRANT_SELECT} WHERE {' AND '.join(clauses)} ORDER BY g.seq DESC LIMIT :limit",
        {"agency": agency, "before": _MAX_SEQ if before is None else before, "state": state,
         "now": now, "dataset": dataset, "limit": limit},
    ))


# -- exchanges -----------------------------------------------------------------------------------


def insert_exchange(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    insert(conn, "exchanges", row)


def get_exchange(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    return first(conn.execute("SELECT * FROM exchanges WHERE name = ?", (name,)))


def started_exchanges(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Exchanges still marked STARTED (at start-up: those a stop interrupted)."""
    return rows(conn.execute("SELECT * FROM exchanges WHERE state = 'STARTED'"))


def restart_exchange(conn: sqlite3.Connection, name: str, grant_name: str) -> bool:
    """Mark a resumed exchange STARTED again under `grant_name` (the grant the requester holds
    now); False, changing nothing, when it has COMPLETED (a completed exchange never reopens)."""
    return conn.execute(
        "UPDATE exchanges SET state = 'STARTED', grant_name = ?, complete_time = NULL,"
        " receipt = NULL WHERE name = ? AND state != 'COMPLETED'",
        (grant_name, name),
    ).rowcount == 1


def end_exchange(
    conn: sqlite3.Connection, name: str, state: str, *, when: str | None = None,
    receipt: bytes | None = None,
) -> bool:
    """Move a STARTED exchange to `state` (COMPLETED or BROKEN); False, changing nothing, when
    it is not STARTED (it ended already)."""
    return conn.execute(
        "UPDATE exchanges SET state = ?, complete_time = ?, receipt = ?"
        " WHERE name = ? AND state = 'STARTED'",
        (state, when, receipt, name),
    ).rowcount == 1


def pending_request(
    conn: sqlite3.Connection, requester: str, dataset: str
) -> dict[str, Any] | None:
    """The PENDING access request of agency id `requester` for `dataset`, if any."""
    return first(conn.execute(
        "SELECT name, decide_deadline FROM access_requests"
        " WHERE requester = ? AND dataset = ? AND state = 'PENDING' LIMIT 1",
        (requester, dataset),
    ))


def count_pending(conn: sqlite3.Connection, requester: str, owner: str) -> int:
    """How many PENDING access requests agency id `requester` has for agency id `owner`."""
    return conn.execute(
        "SELECT COUNT(*) FROM access_requests"
        " WHERE requester = ? AND owner = ? AND state = 'PENDING'",
        (requester, owner),
    ).fetchone()[0]
