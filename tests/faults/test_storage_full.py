"""A full or failing disk: a clear error, nothing half-written, recovery when space returns."""

from __future__ import annotations

import sqlite3

import pytest

from agencies import errors
from agencies.sim.roster import AgencySpec
from gateway import config as config_module
from gateway.network import add_agency
from gateway.server import create_server
from gateway.storage import StorageError
from gateway.storage import audit as audit_sql
from govshare.transparency import merkle


def _fill_disk(conn: sqlite3.Connection) -> int:
    """Cap the database at its current size, as a full disk would; returns the old cap."""
    old = conn.execute("PRAGMA max_page_count").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")
    return old


def _root_of_records(conn: sqlite3.Connection) -> bytes:
    return merkle.root_from_leaf_hashes(
        [merkle.leaf_hash(record) for _, record in audit_sql.iter_records(conn)]
    )


def test_full_disk_refuses_cleanly_and_recovers(network, caplog):
    gateway = network.gateway
    admin = network.admin()
    reader = gateway.db.reader()
    old_cap = _fill_disk(gateway.db.writer)
    accepted, refused = [], None
    for n in range(40):
        spec = AgencySpec(f"agency-{n:03d}", f"Bureau number {n} with a long name " * 3, "110000")
        pem = (add_agency(network.layout, spec) / "signing.pem").read_text()
        try:
            admin.register_agency(spec.id, spec.display_name, spec.region_code, pem)
            accepted.append(spec.id)
        except errors.Unavailable as exc:
            refused = (spec, pem, exc)
            break
    assert refused, "the capped database never filled up"
    spec, pem, error = refused
    assert error.reason == "STORAGE_ERROR"
    # The caller gets a request id; the SQLite detail stays in the operator's log.
    request_id = error.metadata["request_id"]
    assert error.message == ("storage is not writable; retry later, or quote request id"
                             f" {request_id} to the operator")
    assert any(request_id in line and "full" in line for line in caplog.messages)
    # Nothing half-written: the refused agency has no row and no ALLOWED event (its refusal may
    # be audited if it fits); the log still verifies.
    names = {a.name for a in admin.agencies()}
    assert f"agencies/{spec.id}" not in names
    assert {f"agencies/{a}" for a in accepted} <= names
    records = [r for _, r in audit_sql.iter_records(reader)]
    assert not [r for r in records if spec.id.encode() in r and b'"ALLOWED"' in r]
    checkpoint = audit_sql.latest_checkpoint(reader)
    assert checkpoint.tree_size == len(records)
    assert checkpoint.root_hash == _root_of_records(reader)

    gateway.db.writer.execute(f"PRAGMA max_page_count={old_cap}")
    assert admin.register_agency(spec.id, spec.display_name, spec.region_code, pem).name == (
        f"agencies/{spec.id}")
    checkpoint = audit_sql.latest_checkpoint(reader)
    assert checkpoint.tree_size == len(records) + 1
    assert checkpoint.root_hash == _root_of_records(reader)


def test_corrupt_database_refuses_to_start(network_factory):
    net = network_factory()
    net.close()
    (net.layout.root / "govshare.db").write_bytes(b"this is not an SQLite database" * 100)
    for suffix in ("-wal", "-shm"):
        (net.layout.root / f"govshare.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(StorageError, match="cannot open database"):
        create_server(config_module.load(net.layout.config_path))
