"""Helpers shared by the exchange tests: publishing, asking, and checking what a call left."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agencies.client import AgencyClient
from certs.ca import CertificateAuthority
from gateway import config as config_module
from gateway.network import lay_out
from gateway.server import create_server
from gateway.v1 import catalog_pb2
from tests.support.network import AGENCIES, Network

SCHEMA = [
    catalog_pb2.SchemaField(name=name, type=catalog_pb2.FIELD_TYPE_STRING,
                            sensitivity=catalog_pb2.SENSITIVITY_NONE)
    for name in ("region", "beds", "doctors")
]
TABLES = ("access_requests", "grants", "exchanges", "events", "datasets", "dataset_versions")


def publish(client: AgencyClient, dataset_id: str,
            content: bytes = b"region,beds,doctors\n1,2,3\n", *,
            sharing_type: str = "UNCONDITIONAL", classification: str = "INTERNAL",
            **fields: Any) -> str:
    """Publish a dataset of the client's agency (CSV unless `media_type` says otherwise: the
    SDK adds column digests to CSV, whose schema is the SCHEMA fields its header names);
    returns its name."""
    if sharing_type == "NOT_SHARED":
        fields.setdefault("legal_basis", "State Secrets Law art. 9")
    fields.setdefault("media_type", "CSV")
    header = content.split(b"\n", 1)[0].decode(errors="replace").split(",")
    fields.setdefault("schema", [field for field in SCHEMA if field.name in header]
                      if fields["media_type"] == "CSV" else SCHEMA)
    client.publish(dataset_id, content, title=f"{dataset_id} title",
                   classification=classification, sharing_type=sharing_type, **fields)
    return client.dataset_name(dataset_id)


def ask(client: AgencyClient, dataset: str, **fields: Any) -> Any:
    """An access request with ordinary purpose and legal basis."""
    fields.setdefault("purpose", "STATISTICS")
    fields.setdefault("purpose_text", "quarterly health statistics report")
    fields.setdefault("legal_basis", "Statistics Law of the PRC, article 7")
    return client.request_access(dataset, **fields)


def counts(network: Any) -> dict[str, int]:
    conn = network.gateway.db.reader()
    found = {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
             for table in (*TABLES, "audit_leaves")}
    return found


def last_leaf(network: Any) -> dict[str, Any]:
    conn = network.gateway.db.reader()
    row = conn.execute("SELECT actor, action, outcome, record FROM audit_leaves"
                       " ORDER BY leaf_index DESC LIMIT 1").fetchone()
    return {"actor": row[0], "action": row[1], "outcome": row[2], "record": row[3].decode()}


def assert_only_refusal(network: Any, before: dict[str, int], action: str, reason: str) -> None:
    """Nothing changed but one REFUSED audit event for `action` carrying `reason`."""
    after = counts(network)
    assert after["audit_leaves"] == before["audit_leaves"] + 1
    assert {k: v for k, v in after.items() if k != "audit_leaves"} == \
        {k: v for k, v in before.items() if k != "audit_leaves"}
    leaf = last_leaf(network)
    assert (leaf["action"], leaf["outcome"]) == (action, "REFUSED")
    assert reason in leaf["record"]


def wait_for(condition: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Poll until `condition()` is truthy (for state the gateway reaches asynchronously)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


class MovableClock:
    """The gateway's clock, which a test moves forward by setting `offset`."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def start_clocked_network(root: Path, **sections: Any) -> tuple[Network, MovableClock]:
    """A network whose gateway reads the time from a MovableClock (close the network after);
    `sections` override its configuration as in `lay_out`."""
    clock = MovableClock()
    layout = lay_out(root, AGENCIES, **sections)
    # A CRL that outlives any move of the clock: past its nextUpdate the gateway refuses calls.
    CertificateAuthority.open(layout.ca_folder).renew_crl(validity_days=3650)
    server = create_server(config_module.load(layout.config_path), clock=clock)
    server.start()
    network = Network(layout, server)
    for spec in AGENCIES:
        network.register(spec)
    return network, clock
