"""Reading refusals back from a gateway's audit log: those audited one by one, and the
summaries standing for those counted beyond a budget (gateway/refusals.py)."""

from __future__ import annotations

import json
import re
import sqlite3

SUMMARY = re.compile(
    r"^(\w+): (\d+) more refusals like this from (\S+) to (\S+)"
    r"(?: \(and other names not listed\))?, counted")


def refused_leaves(conn: sqlite3.Connection, action: str, after: int) -> list[str]:
    rows = conn.execute("SELECT CAST(record AS TEXT) FROM audit_leaves WHERE action = ? AND"
                        " outcome = 'REFUSED' AND leaf_index >= ? ORDER BY leaf_index",
                        (action, after)).fetchall()
    return [row[0] for row in rows]


def summarised(records: list[str]) -> dict[str, int]:
    """Refusals each reason code's summary events stand for, added up."""
    found: dict[str, int] = {}
    for text in records:
        match = SUMMARY.search(reason(text))
        if match:
            found[match.group(1)] = found.get(match.group(1), 0) + int(match.group(2))
    return found


def reason(text: str) -> str:
    return json.loads(text)["reason"]


def leaf_count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM audit_leaves").fetchone()[0]
