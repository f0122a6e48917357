"""AuditService through a real gateway: visibility per caller kind, paging, filters, proofs."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from agencies import errors
from gateway.v1 import audit_pb2
from govshare import times
from govshare.transparency import merkle, note

GD = "urn:govshare:agency:gd-health"


def events(client, **filters) -> list[audit_pb2.AuditEvent]:
    request = audit_pb2.ListAuditEventsRequest(**filters)
    return list(client._pages(client.audit.ListAuditEvents, request, "audit_events"))


def leaf_count(network) -> int:
    return network.gateway.db.reader().execute("SELECT COUNT(*) FROM audit_leaves").fetchone()[0]


def last_event(network) -> dict:
    from govshare.transparency import record

    row = network.gateway.db.reader().execute(
        "SELECT record FROM audit_leaves ORDER BY leaf_index DESC LIMIT 1"
    ).fetchone()
    return record.decode(row[0])


def refused(network, call, code: grpc.StatusCode, reason: str, action: str) -> errors.GovshareError:
    """Run `call`, expect a refusal, and check that only its refusal event was written."""
    before = leaf_count(network)
    with pytest.raises(errors.GovshareError) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert caught.value.reason == reason
    assert leaf_count(network) == before + 1
    written = last_event(network)
    assert written["outcome"] == "REFUSED"
    assert written["action"] == action
    assert written["reason"].startswith(reason)
    return caught.value


def provoke_refusal(network) -> None:
    """gd-health asks for an event about sz-market: a refused action of its own (leaf 3)."""
    with pytest.raises(errors.PermissionDenied):
        network.agency("gd-health").audit_event(1)


def test_auditor_reads_every_event_with_its_exact_record(network):
    found = events(network.auditor())
    assert [e.action for e in found] == ["directory.register"] * 3
    assert [e.leaf_index for e in found] == [0, 1, 2]
    first = found[0]
    assert first.name == "auditEvents/0"
    assert first.actor == "urn:govshare:admin:admin"
    assert first.outcome == audit_pb2.OUTCOME_ALLOWED
    assert "agencies/gd-health" in first.resources
    assert list(first.agencies) == ["agencies/gd-health"]
    stored = network.gateway.db.reader().execute(
        "SELECT hash FROM tree_nodes WHERE id = 0").fetchone()[0]
    assert merkle.leaf_hash(first.record) == stored


def test_agency_sees_its_own_actions_and_the_events_that_concern_it(network):
    provoke_refusal(network)
    gd = events(network.agency("gd-health"))
    assert [(e.leaf_index, e.action, e.outcome) for e in gd] == [
        (0, "directory.register", audit_pb2.OUTCOME_ALLOWED),
        (3, "audit.get", audit_pb2.OUTCOME_REFUSED),
    ]
    assert gd[1].actor == GD
    assert "agencies/gd-health" in gd[1].agencies
    sz = events(network.agency("sz-market"))
    assert [e.leaf_index for e in sz] == [1]


def test_admin_may_not_list_or_read_events(network):
    admin = network.admin()
    refused(network, lambda: events(admin), grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_NOT_ALLOWED", "audit.list")
    refused(network, lambda: admin.audit_event(0), grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_NOT_ALLOWED", "audit.get")


def test_get_event_checks_permission_before_existence(network):
    gd = network.agency("gd-health")
    assert gd.audit_event(0).action == "directory.register"
    invisible = refused(network, lambda: gd.audit_event(1), grpc.StatusCode.PERMISSION_DENIED,
                        "EVENT_NOT_VISIBLE", "audit.get")
    missing = refused(network, lambda: gd.audit_event(999), grpc.StatusCode.PERMISSION_DENIED,
                      "EVENT_NOT_VISIBLE", "audit.get")
    assert "auditEvents/1" in invisible.message and "auditEvents/999" in missing.message
    auditor = network.auditor()
    get = auditor.audit.GetAuditEvent
    assert auditor._call(get, audit_pb2.GetAuditEventRequest(name="auditEvents/1")) \
        .audit_event.leaf_index == 1
    refused(network, lambda: auditor._call(get, audit_pb2.GetAuditEventRequest(
        name="auditEvents/999")), grpc.StatusCode.NOT_FOUND, "NOT_FOUND", "audit.get")
    bad = refused(network, lambda: auditor._call(get, audit_pb2.GetAuditEventRequest(
        name="auditEvents/01")), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
        "audit.get")
    assert bad.metadata["field"] == "name"


@pytest.mark.parametrize("index", ["9223372036854775808", "9999999999999999999"])
def test_get_event_beyond_int64_is_invalid_argument(network, index):
    name = f"auditEvents/{index}"
    for client in (network.auditor(), network.agency("gd-health")):
        bad = refused(network, lambda c=client: c._call(c.audit.GetAuditEvent,
                                                        audit_pb2.GetAuditEventRequest(name=name)),
                      grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "audit.get")
        assert bad.metadata["field"] == "name" and "9223372036854775807" in bad.message
    auditor = network.auditor()
    refused(network, lambda: auditor._call(auditor.audit.GetAuditEvent,
                                           audit_pb2.GetAuditEventRequest(
                                               name="auditEvents/9223372036854775807")),
            grpc.StatusCode.NOT_FOUND, "NOT_FOUND", "audit.get")


def test_pages_and_filters(network):
    provoke_refusal(network)
    auditor = network.auditor()
    first = auditor._call(auditor.audit.ListAuditEvents,
                          audit_pb2.ListAuditEventsRequest(page_size=2))
    assert [e.leaf_index for e in first.audit_events] == [0, 1]
    assert first.next_page_token
    assert [e.leaf_index for e in events(auditor, page_size=1)] == [0, 1, 2, 3]
    refused(network, lambda: auditor._call(
        auditor.audit.ListAuditEvents,
        audit_pb2.ListAuditEventsRequest(page_size=2, page_token=first.next_page_token,
                                         action="directory.register")),
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN", "audit.list")
    assert [e.leaf_index for e in events(auditor, actor=GD)] == [3]
    assert [e.leaf_index for e in events(auditor, outcome=audit_pb2.OUTCOME_REFUSED)] \
        == [3, 4]
    assert [e.leaf_index for e in events(auditor, agency="agencies/sz-market")] == [1]
    assert [e.leaf_index for e in events(auditor, action="audit.list")] == [4]
    now = times.utcnow()
    later = times.to_timestamp(now + timedelta(hours=1))
    assert events(auditor, start_time=later) == []
    assert len(events(auditor, end_time=later)) == 5
    refused(network, lambda: events(auditor, agency="gd-health"),
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "audit.list")
    refused(network, lambda: events(auditor, dataset="agencies/gd-health"),
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "audit.list")


def test_checkpoint_and_proofs_verify_client_side(network):
    admin = network.admin()
    response = admin._call(admin.audit.GetCheckpoint, audit_pb2.GetCheckpointRequest())
    pinned = network.layout.root.joinpath("audit.vkey").read_text().strip()
    assert response.verifier_key == pinned
    verifier = note.NoteVerifier.from_verifier_key(pinned)
    checkpoint = note.Checkpoint.parse(
        note.open_note(response.signed_checkpoint.encode(), [verifier]))
    assert (checkpoint.size, checkpoint.root_hash, checkpoint.origin) == (
        response.tree_size, response.root_hash, response.origin)
    assert not response.HasField("origin_link")  # the log never changed origin
    size = checkpoint.size
    records = [e.record for e in events(network.auditor())]
    for index in range(size):
        proof = admin._call(admin.audit.GetInclusionProof,
                            audit_pb2.GetInclusionProofRequest(leaf_index=index, tree_size=size))
        assert proof.leaf_hash == merkle.leaf_hash(records[index])
        merkle.verify_inclusion(proof.leaf_hash, index, size, proof.hashes, checkpoint.root_hash)
    gd = network.agency("gd-health")
    for first in range(1, size + 1):
        proof = gd._call(gd.audit.GetConsistencyProof,
                         audit_pb2.GetConsistencyProofRequest(first_size=first, second_size=size))
        old_root = merkle.root_from_leaf_hashes(merkle.leaf_hash(r) for r in records[:first])
        merkle.verify_consistency(first, size, proof.hashes, old_root, checkpoint.root_hash)
    latest = gd._call(gd.audit.GetInclusionProof, audit_pb2.GetInclusionProofRequest(
        leaf_index=0))
    assert latest.tree_size >= size


@pytest.mark.parametrize(("request_", "code", "field"), [
    (audit_pb2.GetInclusionProofRequest(leaf_index=-1), "INVALID_ARGUMENT", "leaf_index"),
    (audit_pb2.GetInclusionProofRequest(leaf_index=10**6), "OUT_OF_RANGE", "leaf_index"),
    (audit_pb2.GetInclusionProofRequest(leaf_index=0, tree_size=10**6), "OUT_OF_RANGE",
     "tree_size"),
    (audit_pb2.GetInclusionProofRequest(leaf_index=0, tree_size=-2), "INVALID_ARGUMENT",
     "tree_size"),
    (audit_pb2.GetConsistencyProofRequest(first_size=0), "INVALID_ARGUMENT", "first_size"),
    (audit_pb2.GetConsistencyProofRequest(first_size=3, second_size=2), "INVALID_ARGUMENT",
     "first_size"),
    (audit_pb2.GetConsistencyProofRequest(first_size=1, second_size=10**6), "OUT_OF_RANGE",
     "second_size"),
])
def test_bad_proof_requests_say_which_field(network, request_, code, field):
    gd = network.agency("gd-health")
    method = gd.audit.GetInclusionProof if isinstance(
        request_, audit_pb2.GetInclusionProofRequest) else gd.audit.GetConsistencyProof
    action = "audit.prove.inclusion" if method == gd.audit.GetInclusionProof \
        else "audit.prove.consistency"
    error = refused(network, lambda: gd._call(method, request_),
                    getattr(grpc.StatusCode, code), code, action)
    assert error.metadata["field"] == field
    assert field in error.message


def test_a_record_altered_on_disk_is_data_loss_not_internal(network):
    auditor = network.auditor()
    writer = network.gateway.db.writer
    writer.execute("UPDATE audit_leaves SET record = CAST(replace(CAST(record AS TEXT),"
                   " '\"outcome\":\"ALLOWED\"', '\"outcome\":\"FORGED\"') AS BLOB)"
                   " WHERE leaf_index = 0")
    with pytest.raises(grpc.RpcError) as caught:
        auditor.audit.GetAuditEvent(audit_pb2.GetAuditEventRequest(name="auditEvents/0"),
                                    timeout=10)
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    assert "audit verify" in caught.value.details()
