"""Receipts proven across the network: an agency that fetched another region's dataset proves
the owner's gateway's receipt in that gateway's log, read through its own gateway (the only one
it connects to), which carries the audit reads there on its behalf and passes the answers back
unchanged; the SDK verifies them with that member's keys and witness policy of the network
configuration and keeps a checkpoint of that log of its own. Real gateways on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from agencies import errors
from agencies.client import AgencyClient, AuditorClient
from gateway.v1 import audit_pb2, audit_pb2_grpc
from govshare.transparency import note
from tests.support.exchange import ask, publish
from tests.support.federation import origin, two_regions

GD, BJ, SH = "gd-gateway", "bj-gateway", "sh-gateway"
DATASET = "agencies/bj-stats/datasets/table"
ON_BEHALF = (("govshare-on-behalf-of", "agencies/gd-health"),)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """gd-health, at gd, fetched bj-stats's dataset from bj through gd."""
    regions = two_regions(tmp_path_factory.mktemp("cross-region-receipts"))
    bj, gd = regions.clients["bj-stats"], regions.clients["gd-health"]
    publish(bj, "table", b"region,beds\n110101,120\n")
    regions.members.pull()
    ask(gd, DATASET)
    regions.fetched = gd.fetch(DATASET, tmp_path_factory.mktemp("inbox") / "table.csv")
    yield regions
    regions.close()


def agency(net, agency_id: str, tmp_path) -> AgencyClient:
    """A new client of `agency_id` at its gateway, with an audit state of its own."""
    home = net.clients[agency_id]
    client = AgencyClient(home.target, home.certs, server_name="localhost")
    client.audit_state_file = tmp_path / f"{agency_id}-audit-state.json"
    return client


def auditor(net, gateway_id: str) -> AuditorClient:
    return AuditorClient(net.members.target(gateway_id), net.members.auditor_folder,
                         server_name="localhost")


def read_through_gd(net, method: str, request):
    """`method` of gd's AuditService as gd-health calls it."""
    gd = net.clients["gd-health"]
    return gd._call(getattr(gd.audit, method), request)


def test_a_receipt_of_the_owners_log_is_proved_through_the_home_gateway(net, tmp_path):
    with agency(net, "gd-health", tmp_path) as gd:
        fetched = gd.fetch(DATASET, tmp_path / "table.csv")
        receipt = fetched.receipt
        assert receipt.audit_log_origin == origin(BJ)
        with pytest.raises(errors.WitnessQuorumNotReached):
            gd.prove_receipt(fetched.signed_receipt)  # bj's witness has not cosigned it yet
        assert net.members.push(BJ)[GD] == "cosigned"

        event = gd.prove_receipt(fetched.signed_receipt)

        assert (event.leaf_index, event.action, event.actor, event.via) == (
            receipt.audit_leaf_index, "exchange.fetch.complete", "urn:govshare:agency:gd-health",
            "urn:govshare:gateway:gd-gateway")
        saved = json.loads(gd.audit_state_file.read_text())["member_logs"][origin(BJ)]
        size = note.Checkpoint.parse(note.unverified_text(saved["checkpoint"].encode())).size
        assert size > receipt.audit_leaf_index
        assert saved["verifier_key"] == net.members.federation.member(BJ).audit_verifier_key


def test_the_owners_answers_are_passed_back_unchanged(net):
    net.members.push(BJ)
    with auditor(net, BJ) as at_bj:
        for witnessed in (False, True):
            through_gd = read_through_gd(net, "GetCheckpoint", audit_pb2.GetCheckpointRequest(
                witnessed=witnessed, log_origin=origin(BJ)))
            assert through_gd == at_bj.signed_checkpoint(witnessed=witnessed)
        assert "— gd-gateway-witness" in through_gd.signed_checkpoint  # the cosignature came
        leaf = net.fetched.receipt.audit_leaf_index
        proof = read_through_gd(net, "GetInclusionProof", audit_pb2.GetInclusionProofRequest(
            leaf_index=leaf, log_origin=origin(BJ)))
        assert proof == at_bj._call(at_bj.audit.GetInclusionProof,
                                    audit_pb2.GetInclusionProofRequest(leaf_index=leaf))


def test_the_owners_gateway_shows_the_remote_agency_only_its_own_events(net):
    publication = next(net.clients["bj-stats"].audit_events(action="catalog.publish"))
    with pytest.raises(errors.PermissionDenied) as hidden:
        net.clients["gd-health"].audit_event(publication.leaf_index, log_origin=origin(BJ))
    assert hidden.value.reason == "EVENT_NOT_VISIBLE"
    assert f"member {BJ} answered" in hidden.value.message
    refused = [e for e in net.clients["bj-stats"].audit_events(action="audit.get",
                                                                outcome="REFUSED")]
    assert not refused  # a refusal is its caller's: bj-stats is not shown gd-health's
    assert [(r["actor"], r["via"], r["outcome"]) for r in net.members.records(BJ, "audit.get")
            ] == [("urn:govshare:agency:gd-health", "urn:govshare:gateway:gd-gateway", "REFUSED")]


def test_a_saved_checkpoint_of_the_owners_log_that_it_does_not_extend_is_a_fork(net, tmp_path):
    net.members.push(BJ)
    with agency(net, "gd-health", tmp_path) as gd:
        gd.prove_receipt(net.fetched.signed_receipt)
        state = json.loads(gd.audit_state_file.read_text())
        saved = note.Checkpoint.parse(note.unverified_text(
            state["member_logs"][origin(BJ)]["checkpoint"].encode()))
        other = note.Checkpoint(origin(BJ), saved.size - 1, b"\x07" * 32)
        signer = net.members.gateway(BJ).note_signer  # as the operator rewriting its history
        state["member_logs"][origin(BJ)]["checkpoint"] = note.sign_note(
            other.to_text(), [signer]).decode()
        gd.audit_state_file.write_text(json.dumps(state))

        with pytest.raises(errors.VerificationError) as forked:
            gd.prove_receipt(net.fetched.signed_receipt)

    assert forked.value.reason == "LOG_FORKED"


def test_a_client_without_a_configuration_refuses_a_receipt_of_another_log(net, network):
    """A gateway alone serves no configuration: its client cannot know bj's log's key."""
    with pytest.raises(errors.VerificationError) as unknown:
        network.agency("gd-health").prove_receipt(net.fetched.signed_receipt)
    assert unknown.value.reason == "RECEIPT_LOG_UNKNOWN"
    assert origin(BJ) in unknown.value.message


def test_a_member_down_is_named(net):
    with pytest.raises(errors.Unavailable) as down:
        read_through_gd(net, "GetCheckpoint", audit_pb2.GetCheckpointRequest(
            log_origin=origin(SH)))
    assert (down.value.reason, down.value.metadata["member"]) == ("MEMBER_UNAVAILABLE", SH)


def test_reads_of_another_log_are_carried_for_agencies_only(net):
    """An auditor's certificate is valid at every member: it reads bj's log at bj."""
    request = audit_pb2.GetAuditEventRequest(name="auditEvents/0", log_origin=origin(BJ))
    with auditor(net, GD) as at_gd, pytest.raises(errors.PermissionDenied) as staff:
        at_gd._call(at_gd.audit.GetAuditEvent, request)
    assert staff.value.reason == "AUDIT_LOG_NOT_CARRIED"
    assert net.members.target(BJ) in staff.value.message
    with pytest.raises(errors.NotFound) as unknown:
        read_through_gd(net, "GetCheckpoint",
                        audit_pb2.GetCheckpointRequest(log_origin="elsewhere.example/audit"))
    assert unknown.value.reason == "AUDIT_LOG_UNKNOWN"
    assert origin(BJ) in unknown.value.message


def test_a_read_a_peer_carried_is_never_carried_on(net):
    """gd, carrying for gd-health, names sh's log at bj: bj answers for its own log only."""
    stub = audit_pb2_grpc.AuditServiceStub(net.members.peer_channel(GD, BJ))
    with pytest.raises(Exception) as refused:
        stub.GetCheckpoint(audit_pb2.GetCheckpointRequest(log_origin=origin(SH)),
                           metadata=ON_BEHALF, timeout=10)
    assert errors.from_rpc_error(refused.value).reason == "AUDIT_LOG_NOT_CARRIED"
    own = stub.GetCheckpoint(audit_pb2.GetCheckpointRequest(log_origin=origin(BJ)),
                             metadata=ON_BEHALF, timeout=10)
    assert own.origin == origin(BJ)
