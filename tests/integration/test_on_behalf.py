"""A peer speaks for its own agencies: the owner's gateway admits a member gateway calling the
exchange RPCs on behalf of an agency homed at that member, as that agency, under the same
rules as a local agency; every other claim is refused and audited."""

from __future__ import annotations

import grpc
import pytest

from agencies.errors import PermissionDenied, from_rpc_error
from gateway.identity import ON_BEHALF_KEY
from gateway.v1 import exchange_pb2
from govshare import envelopes
from govshare.transparency import record
from tests.support.exchange import ask, publish
from tests.support.federation import two_regions

GD, BJ = "gd-gateway", "bj-gateway"
VIA_GD = "urn:govshare:gateway:gd-gateway"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """gd-health at gd, bj-stats at bj with a CONDITIONAL dataset and a CONFIDENTIAL one;
    each member holds the other's agencies."""
    regions = two_regions(tmp_path_factory.mktemp("on-behalf"))
    publish(regions.clients["bj-stats"], "census", sharing_type="CONDITIONAL")
    publish(regions.clients["bj-stats"], "secret", sharing_type="UNCONDITIONAL",
            classification="CONFIDENTIAL")
    regions.members.pull()
    yield regions
    regions.close()


def _statement(regions, dataset="agencies/bj-stats/datasets/census"):
    gd = regions.clients["gd-health"]
    statement = gd.access_request_statement(
        dataset, purpose="STATISTICS", purpose_text="regional comparison",
        legal_basis="Statistics Law of the PRC, article 7")
    return exchange_pb2.CreateAccessRequestRequest(
        parent=gd.name, signed_statement=envelopes.seal(gd.signing_key,
                                                        envelopes.ACCESS_REQUEST, statement))


def _refusal(call) -> tuple[str, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code().name, from_rpc_error(raised.value).reason


def _last_leaf(regions, gateway_id: str) -> dict:
    row = regions.members.gateway(gateway_id).db.reader().execute(
        "SELECT record FROM audit_leaves ORDER BY leaf_index DESC LIMIT 1").fetchone()
    return record.decode(row[0])


def test_a_peer_asks_for_its_agency_which_acts_as_itself_at_the_owners_gateway(net):
    stub = net.members.peer_exchange(GD, BJ)
    created = stub.CreateAccessRequest(_statement(net),
                                       metadata=((ON_BEHALF_KEY, "agencies/gd-health"),))
    request = created.access_request
    assert (request.requester, request.state) == (
        "agencies/gd-health", exchange_pb2.ACCESS_REQUEST_STATE_PENDING)
    leaf = _last_leaf(net, BJ)
    assert (leaf["actor"], leaf["via"], leaf["action"], leaf["v"]) == (
        "urn:govshare:agency:gd-health", VIA_GD, "exchange.request.create",
        record.VIA_FORMAT_VERSION)
    incoming = list(net.clients["bj-stats"].access_requests("INCOMING"))
    assert [r.name for r in incoming] == [request.name]
    approved = net.clients["bj-stats"].approve(request.name)
    assert approved.grant.grantee == "agencies/gd-health"
    listed = stub.ListGrants(exchange_pb2.ListGrantsRequest(
        parent="agencies/gd-health", direction=exchange_pb2.DIRECTION_OUTGOING),
        metadata=((ON_BEHALF_KEY, "agencies/gd-health"),))
    assert [g.name for g in listed.grants] == [approved.grant.name]


@pytest.mark.parametrize("claimed, reason", [
    ("agencies/bj-stats", "ON_BEHALF_AGENCY_NOT_HOMED"),  # the owner gateway's own agency
    ("agencies/nobody", "ON_BEHALF_AGENCY_NOT_HOMED"),
    ("bj-stats", "ON_BEHALF_INVALID"),
])
def test_a_peer_speaking_for_an_agency_it_does_not_serve_is_refused_and_audited(
        net, claimed, reason):
    stub = net.members.peer_exchange(GD, BJ)
    refused = _refusal(lambda: stub.GetAccessRequest(
        exchange_pb2.GetAccessRequestRequest(name="agencies/bj-stats/accessRequests/x"),
        metadata=((ON_BEHALF_KEY, claimed),)))
    assert refused[1] == reason
    leaf = _last_leaf(net, BJ)
    assert (leaf["actor"], leaf["outcome"], leaf["reason"].split(":")[0]) == (
        VIA_GD, "REFUSED", reason)
    assert claimed in leaf["resources"]


def test_a_peer_without_the_metadata_or_on_an_rpc_not_carried_is_refused(net):
    stub = net.members.peer_exchange(GD, BJ)
    assert _refusal(lambda: stub.CreateAccessRequest(_statement(net))) == (
        "PERMISSION_DENIED", "ON_BEHALF_REQUIRED")
    decision = exchange_pb2.ApproveAccessRequestRequest(name="agencies/gd-health/accessRequests/x")
    assert _refusal(lambda: stub.ApproveAccessRequest(
        decision, metadata=((ON_BEHALF_KEY, "agencies/gd-health"),))) == (
        "PERMISSION_DENIED", "ON_BEHALF_NOT_ALLOWED")
    leaf = _last_leaf(net, BJ)
    assert (leaf["actor"], leaf["via"]) == ("urn:govshare:agency:gd-health", VIA_GD)


def test_an_agency_certificate_sending_the_metadata_is_refused(net):
    bj = net.clients["bj-stats"]
    refused = _refusal(lambda: bj.exchange.ListGrants(
        exchange_pb2.ListGrantsRequest(parent=bj.name,
                                       direction=exchange_pb2.DIRECTION_OUTGOING),
        metadata=((ON_BEHALF_KEY, "agencies/gd-health"),)))
    assert refused == ("PERMISSION_DENIED", "ON_BEHALF_NOT_A_PEER")
    assert _last_leaf(net, BJ)["actor"] == "urn:govshare:agency:bj-stats"


@pytest.mark.parametrize("twice", [("agencies/gd-health", "agencies/bj-stats"),
                                   ("agencies/bj-stats", "agencies/gd-health"),
                                   ("agencies/gd-health", "agencies/gd-health")])
def test_xr_door_the_metadata_sent_twice_is_refused(net, twice):
    """A peer sending govshare-on-behalf-of twice spoke for whichever came last: which one
    holds is no one's to guess, so neither does."""
    stub = net.members.peer_exchange(GD, BJ)
    assert _refusal(lambda: stub.ListGrants(exchange_pb2.ListGrantsRequest(
        parent="agencies/gd-health", direction=exchange_pb2.DIRECTION_OUTGOING),
        metadata=tuple((ON_BEHALF_KEY, agency) for agency in twice))) == (
        "INVALID_ARGUMENT", "ON_BEHALF_INVALID")


def test_xr_door_a_confidential_dataset_answers_as_one_never_published(net, tmp_path):
    """Carried for gd-health, a request for bj-stats's CONFIDENTIAL dataset and one for a
    dataset never published are answered alike, and so are their fetches: the owner's gateway
    tells a peer no more than it tells a local agency."""
    gd = net.clients["gd-health"]
    answers = {}
    for dataset_id in ("secret", "never-published"):
        name = f"agencies/bj-stats/datasets/{dataset_id}"
        request = ask(gd, name, request_id=f"door-{dataset_id}").access_request
        with pytest.raises(PermissionDenied) as fetch:
            gd.fetch(name, tmp_path / dataset_id)
        answers[dataset_id] = (request.state, request.state_reason.replace(dataset_id, "?"),
                               fetch.value.reason)
    assert answers["secret"] == answers["never-published"]
    assert answers["secret"][0] == exchange_pb2.ACCESS_REQUEST_STATE_PENDING


def test_a_statement_signed_by_another_agency_is_refused_for_the_agency_spoken_for(net):
    stub = net.members.peer_exchange(GD, BJ)
    request = _statement(net)
    request.signed_statement.CopyFrom(envelopes.seal(
        net.clients["bj-stats"].signing_key, envelopes.ACCESS_REQUEST,
        exchange_pb2.AccessRequestStatement.FromString(request.signed_statement.payload)))
    assert _refusal(lambda: stub.CreateAccessRequest(
        request, metadata=((ON_BEHALF_KEY, "agencies/gd-health"),))) == (
        "PERMISSION_DENIED", "SIGNER_NOT_CALLER")


def test_a_suspension_at_the_home_gateway_reaches_the_owners_gateway(net):
    net.admins[GD].suspend_agency("agencies/gd-health", "inquiry")
    try:
        net.members.pull()
        stub = net.members.peer_exchange(GD, BJ)
        assert _refusal(lambda: stub.ListGrants(exchange_pb2.ListGrantsRequest(
            parent="agencies/gd-health", direction=exchange_pb2.DIRECTION_OUTGOING),
            metadata=((ON_BEHALF_KEY, "agencies/gd-health"),))) == (
            "PERMISSION_DENIED", "AGENCY_SUSPENDED")
    finally:
        net.admins[GD].reinstate_agency("agencies/gd-health", "cleared")
        net.members.pull()


def test_a_statement_signed_before_its_key_was_retired_still_counts_and_one_after_not(
        net, tmp_path):
    """The owner's gateway knows the agency's keys from its replica, retired ones too: a
    request signed just before its agency renewed its key (a retry, say) is taken."""
    before = _statement(net, "agencies/bj-stats/datasets/census")
    gd = net.clients["gd-health"]
    renewed = tmp_path / "renewed"
    net.members.federation.ca.issue_agency("gd-health", renewed)
    net.admins[GD].replace_signing_certificate(
        "agencies/gd-health", (renewed / "signing.pem").read_text(), "renewal")
    net.members.pull()
    stub = net.members.peer_exchange(GD, BJ)
    speaking = ((ON_BEHALF_KEY, "agencies/gd-health"),)
    # The first test's request for census is PENDING or decided: ask for another dataset.
    publish(net.clients["bj-stats"], "retired-key", sharing_type="CONDITIONAL")
    net.members.pull()
    # Signed (its create_time) before the renewal, sent after.
    statement = exchange_pb2.AccessRequestStatement.FromString(before.signed_statement.payload)
    statement.dataset = "agencies/bj-stats/datasets/retired-key"
    early = exchange_pb2.CreateAccessRequestRequest(
        parent=gd.name, signed_statement=envelopes.seal(gd.signing_key,
                                                        envelopes.ACCESS_REQUEST, statement))
    assert stub.CreateAccessRequest(early, metadata=speaking).access_request.name
    late = _statement(net, "agencies/bj-stats/datasets/retired-key")  # now, with the old key
    assert _refusal(lambda: stub.CreateAccessRequest(late, metadata=speaking)) == (
        "PERMISSION_DENIED", "SIGNING_KEY_RETIRED")
