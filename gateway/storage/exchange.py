"""SQL for access requests, grants and exchanges.

Two states are derived when reading rather than stored: a grant past its expire_time reads as
EXPIRED, and an APPROVED request whose grant has expired reads as EXPIRED. `effective_state`
carries the derived value; `state` stays what was written.
"""

from __future__ import annotations

import sqlite3

from gateway.models import AccessRequest, Exchange, Grant
from gateway.storage.database import every, first, insert

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


_DERIVED = ("seq", "effective_state")
"""Fields of a request or grant that are not written: the database numbers it, and the
effective state is derived when reading."""


def insert_access_request(conn: sqlite3.Connection, request: AccessRequest,
                          on_conflict: str = "") -> None:
    insert(conn, "access_requests", request, skip=_DERIVED, on_conflict=on_conflict)


def get_access_request(conn: sqlite3.Connection, name: str, now: str) -> AccessRequest | None:
    return first(conn.execute(f"{_REQUEST_SELECT} WHERE r.name = :name",
                              {"name": name, "now": now}), AccessRequest)


def find_by_request_id(
    conn: sqlite3.Connection, requester: str, request_id: str, now: str
) -> AccessRequest | None:
    """The access request `requester` (agency id) made with idempotency key `request_id`."""
    return first(conn.execute(
        f"{_REQUEST_SELECT} WHERE r.requester = :requester AND r.request_id = :request_id",
        {"requester": requester, "request_id": request_id, "now": now},
    ), AccessRequest)


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
) -> list[AccessRequest]:
    """Requests to (incoming) or from an agency id, newest first, with seq below `before`."""
    side = "owner" if incoming else "requester"
    clauses = [f"r.{side} = :agency", "r.seq < :before"]
    if state:
        clauses.append("effective_state = :state")
    if overdue_only:
        clauses.append("r.state = 'PENDING' AND r.decide_deadline < :now")
    if dataset:
        clauses.append("r.dataset = :dataset")
    return every(conn.execute(
        f"{_REQUEST_SELECT} WHERE {' AND '.join(clauses)} ORDER BY r.seq DESC LIMIT :limit",
        {"agency": agency, "before": _MAX_SEQ if before is None else before, "state": state,
         "now": now, "dataset": dataset, "limit": limit},
    ), AccessRequest)


# -- grants --------------------------------------------------------------------------------------


def insert_grant(conn: sqlite3.Connection, grant: Grant, on_conflict: str = "") -> None:
    insert(conn, "grants", grant, skip=_DERIVED, on_conflict=on_conflict)


def get_grant(conn: sqlite3.Connection, name: str, now: str) -> Grant | None:
    return first(conn.execute(f"{_GRANT_SELECT} WHERE g.name = :name",
                              {"name": name, "now": now}), Grant)


def active_grants(
    conn: sqlite3.Connection, grantee: str, dataset: str, now: str
) -> list[Grant]:
    """The grantee's (agency id) unexpired ACTIVE grants on `dataset`, longest lasting first."""
    return every(conn.execute(
        f"{_GRANT_SELECT} WHERE g.grantee = :grantee AND g.dataset = :dataset"
        " AND g.state = 'ACTIVE' AND g.expire_time > :now ORDER BY g.expire_time DESC",
        {"grantee": grantee, "dataset": dataset, "now": now},
    ), Grant)


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
) -> list[Grant]:
    """Grants given by (incoming) or held by an agency id, newest first."""
    side = "owner" if incoming else "grantee"
    clauses = [f"g.{side} = :agency", "g.seq < :before"]
    if state:
        clauses.append("effective_state = :state")
    if dataset:
        clauses.append("g.dataset = :dataset")
    return every(conn.execute(
        f"{_GRANT_SELECT} WHERE {' AND '.join(clauses)} ORDER BY g.seq DESC LIMIT :limit",
        {"agency": agency, "before": _MAX_SEQ if before is None else before, "state": state,
         "now": now, "dataset": dataset, "limit": limit},
    ), Grant)


# -- exchanges -----------------------------------------------------------------------------------


def insert_exchange(conn: sqlite3.Connection, exchange: Exchange) -> None:
    insert(conn, "exchanges", exchange)


def get_exchange(conn: sqlite3.Connection, name: str) -> Exchange | None:
    return first(conn.execute("SELECT * FROM exchanges WHERE name = ?", (name,)), Exchange)


def started_exchanges(conn: sqlite3.Connection) -> list[Exchange]:
    """Exchanges still marked STARTED (at start-up: those a stop interrupted)."""
    return every(conn.execute("SELECT * FROM exchanges WHERE state = 'STARTED'"), Exchange)


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
) -> tuple[str, str] | None:
    """The name and decide deadline of the PENDING access request of agency id `requester`
    for `dataset`, if any."""
    return conn.execute(
        "SELECT name, decide_deadline FROM access_requests"
        " WHERE requester = ? AND dataset = ? AND state = 'PENDING' LIMIT 1",
        (requester, dataset),
    ).fetchone()


def count_pending(conn: sqlite3.Connection, requester: str, owner: str) -> int:
    """How many PENDING access requests agency id `requester` has for agency id `owner`."""
    return conn.execute(
        "SELECT COUNT(*) FROM access_requests"
        " WHERE requester = ? AND owner = ? AND state = 'PENDING'",
        (requester, owner),
    ).fetchone()[0]


# -- copies of requests and grants carried to other members --------------------------------------


def put_forwarded_request(conn: sqlite3.Connection, request: AccessRequest) -> None:
    """Insert or update the copy of a request its member holds (its `member` set); a copy keeps
    its place in the listing (its seq) and changes only as its member decides or closes it.
    Only a copy of that member, of the same statement, is updated: never a local request nor
    another member's copy (the forwarding refuses such an answer before; this holds anyway)."""
    insert_access_request(conn, request, on_conflict=(
        " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
        " state_reason = excluded.state_reason, decide_deadline = excluded.decide_deadline,"
        " signed_decision = excluded.signed_decision, grant_name = excluded.grant_name,"
        " decide_time = excluded.decide_time WHERE access_requests.member = excluded.member"
        " AND access_requests.statement_digest = excluded.statement_digest"))


def put_forwarded_grant(conn: sqlite3.Connection, grant: Grant) -> None:
    """Insert or update the copy of a grant its member gave (its `member` set); only its state
    and revocation change, and only of a copy of that member for the same request (never a
    local grant nor another member's copy)."""
    insert_grant(conn, grant, on_conflict=(
        " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
        " revoke_time = excluded.revoke_time, revoke_reason = excluded.revoke_reason"
        " WHERE grants.member = excluded.member"
        " AND grants.access_request = excluded.access_request"))


def forwarded_pending(conn: sqlite3.Connection, member: str, now: str) -> list[AccessRequest]:
    """The copies of requests `member` holds that were PENDING when it last answered."""
    return every(conn.execute(
        f"{_REQUEST_SELECT} WHERE r.member = :member AND r.state = 'PENDING' ORDER BY r.seq",
        {"member": member, "now": now}), AccessRequest)


def forwarded_grantees(conn: sqlite3.Connection, member: str, now: str) -> list[str]:
    """The agency ids holding grants `member` gave that were in force when it last answered."""
    return [row[0] for row in conn.execute(
        "SELECT DISTINCT grantee FROM grants WHERE member = ? AND state = 'ACTIVE'"
        " AND expire_time > ?", (member, now))]


def open_members(conn: sqlite3.Connection, agency: str, now: str) -> list[str]:
    """The members holding requests of agency id `agency` still PENDING, or grants to it still
    in force, as they last answered: those whose answers may have changed since."""
    return [row[0] for row in conn.execute(
        "SELECT member FROM access_requests WHERE member IS NOT NULL AND requester = ?"
        " AND state = 'PENDING' UNION SELECT member FROM grants WHERE member IS NOT NULL"
        " AND grantee = ? AND state = 'ACTIVE' AND expire_time > ? ORDER BY 1",
        (agency, agency, now))]
