"""The SDK's checkpoint tracking catches a gateway that forks or truncates its log, and holds
up under threads of one agency; its proofs bind what they prove."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agencies import errors
from agencies.client import AgencyClient
from agencies.errors import PermissionDenied, VerificationError
from agencies.exchange import FETCH_COMPLETE
from gateway import config as config_module
from gateway.server import create_server
from gateway.v1 import audit_pb2, exchange_pb2
from govshare.signing import SigningKey
from govshare.transparency import merkle, note
from tests.support.exchange import ask, counts, last_leaf, publish


def copy_database(network, target: Path) -> Path:
    """A consistent copy of the running gateway's database, as of now."""
    with sqlite3.connect(target) as copy:
        network.gateway.db.reader().backup(copy)
    copy.close()
    return target


@contextmanager
def second_gateway(network, database: Path) -> Iterator[str]:
    """Another gateway with the same keys and origin over `database`; yields its address.

    It keeps no saved checkpoint of the first one (a copy on another machine, started by an
    operator who vouches for its database), so the gateway does not refuse it: only the
    agencies' saved checkpoints can catch it."""
    config = config_module.load(network.layout.config_path).replace(
        storage={"database": database, "blobs": database.with_suffix(".blobs")},
        audit={"verifier_key_file": database.with_suffix(".vkey"),
               "checkpoint_file": database.with_suffix(".checkpoint")},
    )
    server = create_server(config, checkpoint_from_database=True)
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
    # The copy lacks the last two leaves; its start on the operator's word added one.
    assert caught.value.metadata == {"old_size": str(seen.size), "new_size": str(seen.size - 1)}


def fetched_once(network, tmp_path: Path):
    """gd-health publishes, sz-market is granted at once and fetches: (sz-market, Fetched)."""
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "beds")
    ask(market, dataset)
    return market, market.fetch(dataset, tmp_path / "beds.csv")


def saved_size(client) -> int:
    state = json.loads(client._audit_state_path().read_text())
    return note.Checkpoint.parse(state["checkpoint"].split("\n\n")[0] + "\n").size


# -- proofs bind what they prove ---------------------------------------------------------------


def test_prove_receipt_finds_the_completed_fetch_of_this_receipt(network, tmp_path):
    market, fetched = fetched_once(network, tmp_path)

    event = market.prove_receipt(fetched.signed_receipt)

    assert event.leaf_index == fetched.receipt.audit_leaf_index
    assert (event.action, event.actor) == (FETCH_COMPLETE, market.identity.uri)
    assert event.resources[0] == fetched.receipt.exchange


def test_prove_receipt_refuses_a_receipt_naming_another_event(network, tmp_path):
    market, fetched = fetched_once(network, tmp_path)
    # The closest impostor: the start of the same exchange, by the same agency.
    start = next(market.audit_events(action="exchange.fetch.start"))
    receipt = exchange_pb2.Receipt.FromString(fetched.signed_receipt.payload)
    receipt.audit_leaf_index = start.leaf_index
    moved = type(fetched.signed_receipt)()
    moved.CopyFrom(fetched.signed_receipt)
    moved.payload = receipt.SerializeToString(deterministic=True)

    with pytest.raises(errors.VerificationError) as caught:
        market.prove_receipt(moved)

    assert caught.value.reason == "RECEIPT_NOT_LOGGED"
    assert caught.value.metadata == {"leaf_index": str(start.leaf_index),
                                     "mismatch": "action,receipt"}


def test_prove_inclusion_hashes_the_record_itself(network, tmp_path):
    """A gateway serving another record than the one its tree holds is caught: the leaf hash
    it supplies with the proof is no longer taken on trust."""
    market, fetched = fetched_once(network, tmp_path)
    index = fetched.receipt.audit_leaf_index
    with sqlite3.connect(network.gateway.db.path) as conn:
        conn.execute("UPDATE audit_leaves SET record = CAST(replace(CAST(record AS TEXT),"
                     " '\"v\":1}', '\"v\":1 }') AS BLOB) WHERE leaf_index = ?", (index,))
    conn.close()

    with pytest.raises(errors.VerificationError) as caught:
        market.prove_inclusion(index)

    assert caught.value.reason == "LEAF_HASH_MISMATCH"
    with pytest.raises(errors.VerificationError) as caught:
        market.prove_receipt(fetched.signed_receipt)
    assert caught.value.reason == "LEAF_HASH_MISMATCH"


def test_prove_inclusion_without_record_needs_an_event_the_caller_reads(network):
    market = network.agency("sz-market")
    before = counts(network)

    with pytest.raises(errors.PermissionDenied) as caught:
        market.prove_inclusion(0)  # gd-health's registration: not sz-market's to read

    assert caught.value.reason == "EVENT_NOT_VISIBLE"
    after = counts(network)
    assert after["audit_leaves"] == before["audit_leaves"] + 1
    leaf = last_leaf(network)
    assert (leaf["action"], leaf["outcome"]) == ("audit.get", "REFUSED")


# -- the saved checkpoint under threads --------------------------------------------------------


def test_threads_of_one_agency_share_the_saved_checkpoint(network):
    market, other = network.agency("sz-market"), network.agency("zj-stats")
    failures: list[BaseException] = []
    seen: list[int] = []

    def check() -> None:
        try:
            for _ in range(40):
                seen.append(market.checkpoint().size)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    grow(other, 60)
    for thread in threads:
        thread.join()

    assert failures == []
    assert saved_size(market) == max(seen)
    assert not list(market._audit_state_path().parent.glob(".audit-state.json.*.tmp"))


def test_a_later_checkpoint_saved_meanwhile_is_no_truncation(network):
    """Client A receives a checkpoint; before it checks it, client B of the same agency
    accepts and saves a later one. A must check the other way and keep B's."""
    a, b = network.agency("sz-market"), network.agency("sz-market")
    a.checkpoint()
    real = a.audit.GetCheckpoint

    def then_b_moves_on(request, **kwargs):
        response = real(request, **kwargs)
        grow(network.agency("zj-stats"), 3)
        b.checkpoint()
        return response

    a.audit.GetCheckpoint = then_b_moves_on
    received = a.checkpoint()
    a.audit.GetCheckpoint = real

    assert saved_size(a) == received.size + 3


def test_an_unwritable_state_file_is_a_typed_error(network, tmp_path):
    market = network.agency("sz-market")
    (tmp_path / "file").write_text("")
    market.audit_state_file = tmp_path / "file" / "audit-state.json"

    with pytest.raises(errors.VerificationError) as caught:
        market.checkpoint()

    assert caught.value.reason == "AUDIT_STATE_UNWRITABLE"
    assert "audit_state_file" in caught.value.message


# -- listings fit the message limit ------------------------------------------------------------


def test_list_audit_events_pages_by_encoded_size(network_factory):
    limit = 66 * 1024  # the least [limits] allows: chunks of 1 KiB and their framing
    network = network_factory(limits={"max_message_bytes": limit, "max_chunk_bytes": 1024})
    auditor = network.auditor()
    grow(network.agency("zj-stats"), 150)
    logged = counts(network)["audit_leaves"]
    request = audit_pb2.ListAuditEventsRequest(page_size=1000)

    first = auditor._call(auditor.audit.ListAuditEvents, request)

    assert first.next_page_token and 1 < len(first.audit_events) < logged
    assert first.ByteSize() <= limit
    names = [event.name for event in auditor._pages(auditor.audit.ListAuditEvents,
                                                    request, "audit_events")]
    assert names[:logged] == [f"auditEvents/{index}" for index in range(logged)]
