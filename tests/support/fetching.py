"""Fetches a test breaks off half-way, and what they leave in the gateway's database."""

from __future__ import annotations

import os

import pytest

from tests.support.exchange import wait_for

MiB = 1024 * 1024
BIG = os.urandom(24 * MiB)
"""Larger than what gRPC buffers in flight, so a fetch can be interrupted half-way."""


class Interrupt(Exception):
    """Raised from a progress callback to break a fetch off."""


def fetch_events(network) -> list[tuple[str, str, str]]:
    conn = network.gateway.db.reader()
    rows = conn.execute("SELECT action, outcome, record FROM audit_leaves"
                        " WHERE action LIKE 'exchange.fetch%' ORDER BY leaf_index").fetchall()
    return [(action, outcome, record.decode()) for action, outcome, record in rows]


def exchange_row(network, name: str) -> dict:
    conn = network.gateway.db.reader()
    row = conn.execute("SELECT state, grant_name, receipt FROM exchanges WHERE name = ?",
                       (name,)).fetchone()
    return dict(zip(("state", "grant_name", "receipt"), row, strict=True))


def break_off(network, client, dataset: str, target) -> str:
    """Start a fetch of `dataset` to `target` and break it off after the first chunk; returns
    the exchange name (BROKEN by the time this returns)."""
    def stop(done: int, total: int) -> None:
        raise Interrupt

    with pytest.raises(Interrupt):
        client.fetch(dataset, target, progress=stop)
    name = target.with_name(target.name + ".part.exchange").read_text().split()[0]
    wait_for(lambda: exchange_row(network, name)["state"] == "BROKEN")
    return name
