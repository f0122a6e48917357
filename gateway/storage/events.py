"""SQL for WatchEvents notifications.

An event has a recipient agency id, or a NULL recipient for dataset events that the agency
owning the dataset, agencies holding a grant on it at the time, and its followers receive.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from gateway.models import Event
from gateway.storage import catalog
from gateway.storage.database import every, insert


def insert_event(conn: sqlite3.Connection, event: Event) -> None:
    """A notification for one agency id, or (recipient None) for every agency holding a grant
    on or following its dataset; the database numbers it."""
    insert(conn, "events", event, skip=("seq",))


def last_seq(conn: sqlite3.Connection) -> int:
    """The position of the newest event (0 when there is none)."""
    return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]


def events_for(
    conn: sqlite3.Connection, agency: str, follow: Sequence[str], *, after: int, limit: int,
    now: str,
) -> list[Event]:
    """Events after position `after` that concern agency id `agency`, oldest first.

    A dataset event counts for a grantee when it happened while the grant was in force, so a
    later revocation or expiry does not open gaps in what a reconnecting watcher receives; under
    a grant not covering CONFIDENTIAL, neither an event about the dataset itself (its
    withdrawal) counts while the dataset is CONFIDENTIAL (by its latest version), nor the
    publication of a CONFIDENTIAL version (the catalog's rule: such a grant reveals neither). A
    followed dataset's events count while the agency may see them at `now` (the catalog's
    rule, version by version: CONFIDENTIAL metadata, of the dataset or of the version an event
    names, only with an ACTIVE grant unexpired at `now`; its own datasets count anyway), so a
    follower that lost its grant stops receiving them."""
    marks = ", ".join("?" for _ in follow)
    followed = (f" OR (e.dataset IN ({marks}) AND EXISTS (SELECT 1 FROM datasets d"
                f" WHERE d.name = e.dataset AND ({catalog.SEES_CONFIDENTIAL}"
                " OR (d.classification != 'CONFIDENTIAL' AND NOT EXISTS (SELECT 1 FROM"
                " dataset_versions v WHERE v.name = e.resource"
                " AND v.classification = 'CONFIDENTIAL')))))") if follow else ""
    visibility = catalog.visible_to_params(agency, now) if follow else ()
    return every(conn.execute(
        "SELECT e.* FROM events e WHERE e.seq > ? AND (e.recipient = ? OR (e.recipient IS NULL"
        " AND (e.dataset LIKE ? ESCAPE '\\'" + followed +
        " OR EXISTS (SELECT 1 FROM grants g WHERE g.grantee = ? AND g.dataset = e.dataset"
        " AND g.create_time <= e.create_time AND g.expire_time > e.create_time"
        " AND (g.revoke_time IS NULL OR g.revoke_time > e.create_time)"
        " AND (g.max_classification = 'CONFIDENTIAL' OR NOT EXISTS (SELECT 1 FROM datasets d"
        " WHERE d.name = e.resource AND d.classification = 'CONFIDENTIAL') AND NOT EXISTS"
        " (SELECT 1 FROM dataset_versions v WHERE v.name = e.resource"
        " AND v.classification = 'CONFIDENTIAL'))"
        "))))"
        " ORDER BY e.seq LIMIT ?",
        (after, agency, _owned_prefix(agency), *follow, *visibility, agency, limit),
    ), Event)


def _owned_prefix(agency: str) -> str:
    """A LIKE pattern matching the datasets of agency id `agency`."""
    escaped = agency.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"agencies/{escaped}/datasets/%"
