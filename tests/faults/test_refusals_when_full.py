"""Refusals the audit log cannot take (a full disk) are counted and summarised once it can."""

from __future__ import annotations

import json
import sqlite3

import pytest

from agencies import errors
from tests.support.exchange import wait_for


def _summaries(conn: sqlite3.Connection) -> list[dict]:
    rows = conn.execute("SELECT record FROM audit_leaves WHERE action = 'catalog.get'"
                        " AND outcome = 'REFUSED'").fetchall()
    return [r for r in (json.loads(row[0]) for row in rows) if "counted" in r["reason"]]


def test_refusals_made_while_the_disk_is_full_are_summarised_later(network_factory):
    network = network_factory(limits={"refusal_summary_seconds": 0.2})
    market = network.agency("sz-market")
    writer, reader = network.gateway.db.writer, network.gateway.db.reader()
    cap = writer.execute("PRAGMA max_page_count").fetchone()[0]
    writer.execute(f"PRAGMA max_page_count={writer.execute('PRAGMA page_count').fetchone()[0]}")
    try:
        for n in range(30):  # each refusal's event is larger than the last free page allows
            with pytest.raises(errors.NotFound):
                market.get(f"missing-{n:02d}-" + "x" * 40)
    finally:
        writer.execute(f"PRAGMA max_page_count={cap}")

    assert wait_for(lambda: sum(int(r["reason"].split()[1]) for r in _summaries(reader)) > 0)
    singles = reader.execute("SELECT COUNT(*) FROM audit_leaves WHERE action = 'catalog.get'"
                             " AND outcome = 'REFUSED' AND CAST(record AS TEXT) NOT LIKE"
                             " '%counted%'").fetchone()[0]
    counted = sum(int(r["reason"].split()[1]) for r in _summaries(reader))
    assert singles + counted == 30  # each refusal is in the log, one way or the other
    assert all(r["reason"].startswith("DATASET_NOT_FOUND: ") for r in _summaries(reader))
