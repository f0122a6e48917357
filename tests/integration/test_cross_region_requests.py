"""Access requests across the network: an agency asks its own gateway for a dataset of an
agency homed at another member; its gateway carries the request there, the owner's gateway and
the owner decide, and the decision comes back. Both logs record what passed through them."""

from __future__ import annotations

import pytest

from agencies.errors import AlreadyExists, FailedPrecondition, Unavailable, VerificationError
from gateway.v1 import exchange_pb2
from govshare import envelopes, errors
from tests.support.exchange import ask, publish
from tests.support.federation import two_regions

GD, BJ = "gd-gateway", "bj-gateway"
PENDING = exchange_pb2.ACCESS_REQUEST_STATE_PENDING
APPROVED = exchange_pb2.ACCESS_REQUEST_STATE_APPROVED


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """gd-health at gd asks bj-stats, at bj, for its datasets; each member holds the other's
    agencies and shared datasets."""
    regions = two_regions(tmp_path_factory.mktemp("cross-region"))
    bj = regions.clients["bj-stats"]
    for dataset_id, sharing_type in (("open", "UNCONDITIONAL"), ("census", "CONDITIONAL"),
                                     ("wages", "CONDITIONAL"), ("housing", "CONDITIONAL"),
                                     ("prices", "UNCONDITIONAL")):
        publish(bj, dataset_id, sharing_type=sharing_type)
    regions.members.pull()
    yield regions
    regions.close()


def _poll(regions) -> dict[str, str]:
    return regions.members.gateway(GD).carrier.poll()


def test_an_unconditional_dataset_of_another_region_is_granted_at_once(net):
    gd = net.clients["gd-health"]
    created = ask(gd, "agencies/bj-stats/datasets/open")
    request, grant = created.access_request, created.grant
    assert (request.state, request.network_member) == (APPROVED, BJ)
    assert (grant.grantee, grant.network_member) == ("agencies/gd-health", BJ)
    # Signed by the owner's gateway, bj, whose signing certificate the configuration names.
    bj_key = net.members.gateway(BJ).signing_key.verifier()
    envelopes.check_sealed(grant.signed_statement, bj_key, envelopes.GRANT)

    forwarded = net.members.records(GD, "exchange.request.forward")[-1]
    assert forwarded["actor"] == "urn:govshare:agency:gd-health"
    assert forwarded["envelopes"] == [envelopes.envelope_id(request.signed_statement),
                                      envelopes.envelope_id(grant.signed_statement)]
    assert f"member {BJ}: APPROVED" in forwarded["reason"]
    created_there = net.members.records(BJ, "exchange.request.create")[-1]
    assert (created_there["actor"], created_there["via"]) == (
        "urn:govshare:agency:gd-health", "urn:govshare:gateway:gd-gateway")
    held = [(g.name, g.network_member) for g in gd.grants()]
    assert (grant.name, BJ) in held


def test_a_conditional_request_approved_by_the_owner_comes_back_to_the_requester(net):
    gd, bj = net.clients["gd-health"], net.clients["bj-stats"]
    pending = ask(gd, "agencies/bj-stats/datasets/census").access_request
    assert (pending.state, pending.network_member) == (PENDING, BJ)
    assert [r.name for r in bj.access_requests("INCOMING", state="PENDING")] == [pending.name]

    approved = bj.approve(pending.name, reason="regional comparison is a public duty")
    assert _poll(net)[BJ] == "1 learned"

    assert gd.access_request(pending.name).state == APPROVED
    listed = {r.name: r for r in gd.access_requests()}
    assert (listed[pending.name].state, listed[pending.name].grant) == (
        APPROVED, approved.grant.name)
    assert approved.grant.name in {g.name for g in gd.grants()}
    stream = gd.watch(cursor="0")
    told = next(e for e in stream if e.resource == pending.name)
    stream.close()
    assert told.type == exchange_pb2.EVENT_TYPE_ACCESS_REQUEST_APPROVED
    assert told.actor == "urn:govshare:agency:bj-stats"
    learned = net.members.records(GD, "exchange.request.learn")[-1]
    assert (learned["actor"], learned["resources"][0]) == (
        "urn:govshare:gateway:gd-gateway", pending.name)
    assert envelopes.envelope_id(approved.grant.signed_statement) in learned["envelopes"]
    assert _poll(net)[BJ] == "0 learned"  # learned once


def test_a_denial_comes_back_with_its_reason(net):
    gd, bj = net.clients["gd-health"], net.clients["bj-stats"]
    pending = ask(gd, "agencies/bj-stats/datasets/wages").access_request
    bj.deny(pending.name, "wages are not shared outside Beijing")
    _poll(net)
    denied = gd.access_request(pending.name)
    assert denied.state == exchange_pb2.ACCESS_REQUEST_STATE_DENIED
    assert "not shared outside Beijing" in denied.state_reason
    assert [r.name for r in gd.access_requests(state="DENIED")] == [pending.name]


def test_a_request_is_withdrawn_through_the_requesters_gateway(net):
    gd, bj = net.clients["gd-health"], net.clients["bj-stats"]
    pending = ask(gd, "agencies/bj-stats/datasets/housing").access_request
    withdrawn = gd.withdraw_request(pending.name, "asked for the wrong year")
    assert (withdrawn.state, withdrawn.network_member) == (
        exchange_pb2.ACCESS_REQUEST_STATE_WITHDRAWN, BJ)
    assert bj.access_request(pending.name).state == exchange_pb2.ACCESS_REQUEST_STATE_WITHDRAWN
    listed = {r.name: r.state for r in gd.access_requests()}
    assert listed[pending.name] == exchange_pb2.ACCESS_REQUEST_STATE_WITHDRAWN
    event = net.members.records(GD, "exchange.request.withdraw")[-1]
    assert event["actor"] == "urn:govshare:agency:gd-health"
    assert f"carried to member {BJ}" in event["reason"]


def test_retries_are_answered_with_the_first_request_across_the_network(net):
    gd = net.clients["gd-health"]
    statement = gd.access_request_statement(
        "agencies/bj-stats/datasets/prices", purpose="STATISTICS", purpose_text="prices",
        legal_basis="Statistics Law of the PRC, article 7")
    envelope = envelopes.seal(gd.signing_key, envelopes.ACCESS_REQUEST, statement)
    first = gd.send_access_request(envelope)
    again = gd.send_access_request(envelope)
    assert again.access_request.name == first.access_request.name
    assert again.grant.name == first.grant.name
    forwards = [r for r in net.members.records(GD, "exchange.request.forward")
                if r["resources"][0] == first.access_request.name]
    assert len(forwards) == 1
    statement.purpose_text = "another purpose"
    with pytest.raises(AlreadyExists) as reused:
        gd.send_access_request(envelopes.seal(gd.signing_key, envelopes.ACCESS_REQUEST,
                                              statement))
    assert reused.value.reason == "REQUEST_ID_REUSED"


def test_a_revocation_at_the_owners_gateway_reaches_the_grantee(net):
    gd, bj = net.clients["gd-health"], net.clients["bj-stats"]
    grant = next(g for g in gd.grants() if g.dataset == "agencies/bj-stats/datasets/open")
    bj.revoke(grant.name, "the dataset is under review")
    _poll(net)
    revoked = next(g for g in gd.grants() if g.name == grant.name)
    assert revoked.state == exchange_pb2.GRANT_STATE_REVOKED
    assert revoked.revoke_reason == "the dataset is under review"
    assert net.members.records(GD, "exchange.grant.learn")[-1]["resources"][0] == grant.name

def test_a_grant_given_at_another_member_is_revoked_only_there(net):
    gd, admin = net.clients["gd-health"], net.admins[GD]
    grant = ask(gd, "agencies/bj-stats/datasets/prices", request_id="revocable").grant
    with pytest.raises(FailedPrecondition) as held:
        admin._call(admin.exchange.RevokeGrant,
                    exchange_pb2.RevokeGrantRequest(name=grant.name, reason="not here"))
    assert (held.value.reason, held.value.metadata["network_member"]) == (
        "GRANT_HELD_BY_MEMBER", BJ)


def test_the_owners_gateway_down_answers_unavailable_and_local_lists_still_answer(tmp_path):
    regions = two_regions(tmp_path / "down")
    try:
        publish(regions.clients["bj-stats"], "census", sharing_type="CONDITIONAL")
        regions.members.pull()
        gd = regions.clients["gd-health"]
        pending = ask(gd, "agencies/bj-stats/datasets/census").access_request
        regions.members.stop(BJ)
        with pytest.raises(Unavailable) as down:
            gd.access_request(pending.name)
        assert (down.value.reason, down.value.metadata["member"]) == ("MEMBER_UNAVAILABLE", BJ)
        assert BJ in down.value.message
        with pytest.raises(Unavailable):
            ask(gd, "agencies/bj-stats/datasets/census", request_id="another")
        with pytest.raises(Unavailable) as fetching:
            gd.fetch("agencies/bj-stats/datasets/census", tmp_path / "census.csv")
        assert fetching.value.reason == "MEMBER_UNAVAILABLE"
        assert "UNAVAILABLE" in regions.members.gateway(GD).carrier.poll()[BJ]
        listing = gd._call(gd.exchange.ListAccessRequests, exchange_pb2.ListAccessRequestsRequest(
            parent=gd.name, direction=exchange_pb2.DIRECTION_OUTGOING))
        assert [(r.name, r.state) for r in listing.access_requests] == [(pending.name, PENDING)]
        assert list(listing.stale_members) == [BJ]

        regions.members.start(BJ)
        regions.clients["bj-stats"].approve(pending.name)
        assert regions.members.gateway(GD).carrier.poll()[BJ] == "1 learned"
        listing = gd._call(gd.exchange.ListAccessRequests, exchange_pb2.ListAccessRequestsRequest(
            parent=gd.name, direction=exchange_pb2.DIRECTION_OUTGOING))
        assert [(r.state, list(listing.stale_members)) for r in listing.access_requests] == [
            (APPROVED, [])]
    finally:
        regions.close()


def test_the_sdk_verifies_a_grant_with_the_member_that_signed_it(net):
    gd = net.clients["gd-health"]
    grant = next(g for g in gd.grants() if g.network_member == BJ)
    assert gd.verify_grant(grant).grantee == "agencies/gd-health"
    forgeries = {
        "another member named": lambda g: setattr(g, "network_member", GD),
        "a field added": lambda g: g.fields.append("salary"),
        "signed by an agency": lambda g: g.signed_statement.CopyFrom(envelopes.seal(
            gd.signing_key, envelopes.GRANT,
            exchange_pb2.GrantStatement.FromString(g.signed_statement.payload))),
    }
    for what, forge in forgeries.items():
        forged = exchange_pb2.Grant()
        forged.CopyFrom(grant)
        forge(forged)
        with pytest.raises(VerificationError):
            gd.verify_grant(forged)
            pytest.fail(f"a grant with {what} was taken")


def test_xr_answers_the_sdk_takes_a_grant_only_from_the_member_homing_its_owner(net):
    """A grant on bj-stats's dataset signed by gd, the requester's own gateway, was taken by
    the SDK: only the member homing the dataset's owner (its directory entry's member, which
    must serve its region) gives grants on its datasets."""
    gd = net.clients["gd-health"]
    genuine = next(g for g in gd.grants() if g.network_member == BJ)
    statement = exchange_pb2.GrantStatement.FromString(genuine.signed_statement.payload)
    forged = exchange_pb2.Grant()
    forged.CopyFrom(genuine)
    forged.network_member = ""  # as gd would list a grant of its own
    forged.signed_statement.CopyFrom(envelopes.seal(
        net.members.gateway(GD).signing_key, envelopes.GRANT, statement))
    with pytest.raises(VerificationError, match=f"homed at {BJ}"):
        gd.verify_grant(forged)


def test_a_members_answer_that_is_not_the_request_carried_there_is_not_kept(net):
    """The checks on a member's answers, fed a genuine answer of bj altered on the way."""
    gd = net.clients["gd-health"]
    created = ask(gd, "agencies/bj-stats/datasets/prices", request_id="checked")
    forwarding = net.members.gateway(GD).forwarding
    tampered = {
        "another statement": lambda a, g: a.signed_statement.CopyFrom(envelopes.seal(
            gd.signing_key, envelopes.ACCESS_REQUEST,
            exchange_pb2.AccessRequestStatement(requester=a.requester, dataset=a.dataset))),
        "another requester": lambda a, g: setattr(a, "requester", "agencies/bj-stats"),
        "a grant of other fields": lambda a, g: g.fields.append("doctors"),
        "a grant signed by another member": lambda a, g: g.signed_statement.CopyFrom(
            envelopes.seal(net.members.gateway(GD).signing_key, envelopes.GRANT,
                           exchange_pb2.GrantStatement.FromString(g.signed_statement.payload))),
    }
    for what, tamper in tampered.items():
        answer, grant = exchange_pb2.AccessRequest(), exchange_pb2.Grant()
        answer.CopyFrom(created.access_request)
        grant.CopyFrom(created.grant)
        tamper(answer, grant)
        with pytest.raises(errors.DataLoss) as refused:
            forwarding.learned(BJ, answer, grant)
            pytest.fail(f"an answer with {what} was kept")
        assert refused.value.reason == "MEMBER_ANSWER_INVALID", what
