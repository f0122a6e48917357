"""The SDK's checkpoint tracking catches a gateway that forks or truncates its log."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agencies.client import AgencyClient
from agencies.errors import PermissionDenied, VerificationError
from gateway import config as config_module
from gateway.audit import merkle, note
from gateway.server import create_server
from gateway.signing import SigningKey


def copy_database(network, target: Path) -> Path:
    """A consistent copy of the running gateway's database, as of now."""
    with sqlite3.connect(target) as copy:
        network.gateway.db.reader().backup(copy)
    copy.close()
    return target


@contextmanager
def second_gateway(network, database: Path) -> Iterator[str]:
    """Another gateway with the same keys and origin over `database`; yields its address."""
    config = config_module.load(network.layout.config_path).replace(
        storage={"database": database, "blobs": database.with_suffix(".blobs")},
        audit={"verifier_key_file": database.with_suffix(".vkey")},
    )
    server = create_server(config)
    server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop(grace=1)


def grow(client: AgencyClient, count: int) -> None:
    """Append `count` events: refused reads of an event about another agency."""
    for _ in range(count):
        with pytest.raises(PermissionDenied):
            client.audit_event(1)


def test_first_checkpoint_pins_the_key_and_later_ones_must_extend_it(network):
    gd = network.agency("gd-health")
    first = gd.checkpoint()
    state = json.loads((network.layout.certs("gd-health") / "audit-state.json").read_text())
    assert state["verifier_key"] == network.layout.root.joinpath("audit.vkey").read_text().strip()
    grow(gd, 3)
    second = gd.checkpoint()
    assert second.size == first.size + 3
    assert gd.checkpoint() == second


def test_prove_inclusion_of_exact_record_bytes(network):
    gd = network.agency("gd-health")
    event = gd.audit_event(0)
    proof = gd.prove_inclusion(0, event.record)
    assert proof.leaf_hash == merkle.leaf_hash(event.record)
    with pytest.raises(VerificationError) as caught:
        gd.prove_inclusion(0, event.record.replace(b"gd-health", b"gd-hea1th"))
    assert caught.value.reason == "LEAF_HASH_MISMATCH"


def test_checkpoint_signed_by_another_key_is_refused(network):
    gd = network.agency("gd-health")
    other = note.NoteSigner("govshare.local/audit", SigningKey.generate())
    gd.audit_verifier_key = other.verifier().verifier_key
    with pytest.raises(VerificationError) as caught:
        gd.checkpoint()
    assert caught.value.reason == "CHECKPOINT_SIGNATURE_INVALID"


def test_sdk_catches_a_fork(network, tmp_path):
    gd = network.agency("gd-health")
    copy = copy_database(network, tmp_path / "fork.db")
    grow(gd, 2)
    seen = gd.checkpoint()
    with second_gateway(network, copy) as target:
        forked = AgencyClient(target, network.layout.certs("gd-health"), server_name="localhost")
        with forked:
            grow(forked, 5)  # a different history, longer than the one gd-health saw
            with pytest.raises(VerificationError) as caught:
                forked.checkpoint()
    assert caught.value.reason == "LOG_FORKED"
    assert caught.value.metadata["old_size"] == str(seen.size)
    assert gd.checkpoint().size == seen.size  # the honest log still extends the saved one


def test_sdk_catches_a_truncation(network, tmp_path):
    gd = network.agency("gd-health")
    copy = copy_database(network, tmp_path / "old.db")
    grow(gd, 2)
    seen = gd.checkpoint()
    with second_gateway(network, copy) as target:
        truncated = AgencyClient(target, network.layout.certs("gd-health"),
                                 server_name="localhost")
        with truncated, pytest.raises(VerificationError) as caught:
            truncated.checkpoint()
    assert caught.value.reason == "LOG_TRUNCATED"
    assert caught.value.metadata == {"old_size": str(seen.size), "new_size": str(seen.size - 2)}
