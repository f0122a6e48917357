"""A member answering what its requester's gateway carried there with what it should not: each
attack a review reproduced (named after it, test_xr_<attack>), refused by the requester's
gateway with DATA_LOSS MEMBER_ANSWER_INVALID, audited with the member as actor, and nothing of
it kept; and the requester's gateway's rounds going on whatever one member answers.

bj-gateway plays the hostile member: its answers, as they reach gd-gateway, are changed as its
operator could change them (`answering`), signed with bj's own signing key when they need a
signature."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agencies.errors import AlreadyExists, DataLoss, NotFound, PermissionDenied, Unavailable
from gateway.carrier import MAX_PAGES
from gateway.paging import Page
from gateway.v1 import exchange_pb2
from govshare import envelopes, errors, times
from govshare.transparency import record
from tests.support.exchange import ask, publish
from tests.support.federation import answering, join_agency, two_regions

GD, BJ = "gd-gateway", "bj-gateway"
BJ_URI = "urn:govshare:gateway:bj-gateway"
INVALID = "MEMBER_ANSWER_INVALID"
PENDING = exchange_pb2.ACCESS_REQUEST_STATE_PENDING


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """gd-health and gd-miit at gd, bj-stats at bj, each with datasets the others may ask
    for; gd-health holds a grant of gd-miit's, and bj-stats one of gd-health's, both revoked,
    and gd-health a request to gd-miit."""
    regions = two_regions(tmp_path_factory.mktemp("member-answers"))
    gd, bj = regions.clients["gd-health"], regions.clients["bj-stats"]
    regions.clients["gd-miit"] = miit = join_agency(regions.members, regions.admins[GD],
                                                    "gd-miit", "440000")
    publish(gd, "beds", sharing_type="UNCONDITIONAL")
    publish(miit, "plants", sharing_type="UNCONDITIONAL")
    publish(miit, "licences", sharing_type="CONDITIONAL")
    for dataset_id, sharing_type in (("open", "UNCONDITIONAL"), ("census", "CONDITIONAL"),
                                     ("wages", "CONDITIONAL"), ("prices", "UNCONDITIONAL")):
        publish(bj, dataset_id, sharing_type=sharing_type)
    regions.members.pull()
    regions.revoked = {}
    for owner, asker, dataset in ((gd, bj, "agencies/gd-health/datasets/beds"),
                                  (miit, gd, "agencies/gd-miit/datasets/plants")):
        grant = ask(asker, dataset).grant
        owner.revoke(grant.name, "no longer shared")
        regions.revoked[dataset] = grant
    regions.local_request = ask(gd, "agencies/gd-miit/datasets/licences").access_request
    yield regions
    regions.close()


def _refusals_by_bj(regions, action: str) -> list[dict]:
    rows = regions.members.gateway(GD).db.reader().execute(
        "SELECT record FROM audit_leaves WHERE action = ? AND actor = ? ORDER BY leaf_index",
        (action, BJ_URI)).fetchall()
    return [record.decode(row[0]) for row in rows]


def _grant_state(regions, name: str) -> tuple[str, str | None]:
    return regions.members.gateway(GD).db.reader().execute(
        "SELECT state, member FROM grants WHERE name = ?", (name,)).fetchone()


def _forged_grant(regions, request: exchange_pb2.AccessRequest,
                  name: str) -> exchange_pb2.Grant:
    """A grant named `name` for `request`, signed by bj's gateway."""
    now = times.utcnow()
    statement = exchange_pb2.GrantStatement(
        grant=name, grantee=request.requester, owner=request.owner, dataset=request.dataset,
        access_request=request.name, create_time=times.to_timestamp(now),
        expire_time=times.to_timestamp(now + timedelta(days=30)))
    return exchange_pb2.Grant(
        name=name, grantee=request.requester, owner=request.owner, dataset=request.dataset,
        access_request=request.name, state=exchange_pb2.GRANT_STATE_ACTIVE,
        signed_statement=envelopes.seal(regions.members.gateway(BJ).signing_key,
                                        envelopes.GRANT, statement))


def _named_like(regions, what: str):
    """The change of bj's answer to a carried CreateAccessRequest taking the name of `what`."""
    def change(answer):
        request = answer.access_request
        if what == "a local request of the requester":
            request.name = regions.local_request.name
            return answer
        held = regions.revoked[what]
        answer.grant.CopyFrom(_forged_grant(regions, request, held.name))
        request.grant = held.name
        return answer
    return change


@pytest.mark.parametrize("what", ["agencies/gd-health/datasets/beds",
                                  "agencies/gd-miit/datasets/plants",
                                  "a local request of the requester"])
def test_xr_grant_overwrite_a_member_cannot_take_the_name_of_a_local_row(net, what):
    """The review's CRITICAL finding: a grant bj signs, named like a grant gd-health (or
    gd-miit) revoked at gd, brought that grant back ACTIVE. A copy never takes the place of a
    local row, nor of another member's copy."""
    gd = net.clients["gd-health"]
    with answering(net.members.gateway(GD), BJ, {"CreateAccessRequest": _named_like(net, what)}), \
            pytest.raises(DataLoss) as refused:
        ask(gd, "agencies/bj-stats/datasets/prices")
    assert (refused.value.reason, refused.value.metadata["member"]) == (INVALID, BJ)

    audited = _refusals_by_bj(net, "exchange.request.create")[-1]
    assert audited["outcome"] == "REFUSED" and INVALID in audited["reason"]
    assert "agencies/gd-health" in audited["subjects"]
    for revoked in net.revoked.values():
        assert _grant_state(net, revoked.name) == ("REVOKED", None)
    assert gd.access_request(net.local_request.name).state == PENDING
    with pytest.raises(PermissionDenied) as fetch:
        net.clients["bj-stats"].fetch("agencies/gd-health/datasets/beds", "/dev/null")
    assert fetch.value.reason == "NO_ACTIVE_GRANT"


def _decision(regions, request: str, outcome: int, *, signer=None):
    key = signer or regions.members.gateway(BJ).signing_key
    return envelopes.seal(key, envelopes.DECISION, exchange_pb2.DecisionStatement(
        access_request=request, outcome=outcome, reason="agreed",
        create_time=times.to_timestamp(times.utcnow()), nonce=b"n" * 16))


@pytest.mark.parametrize("forgery", ["signed by the owner's gateway", "of another request",
                                     "of the other outcome", "a denial without one"])
def test_xr_forged_decision_is_not_learned(net, forgery):
    """bj decides without bj-stats: the decision it passes on must be one bj-stats signed
    (its key as replicated), for that very request, saying what the answer says."""
    gd, bj = net.clients["gd-health"], net.clients["bj-stats"]
    pending = ask(gd, "agencies/bj-stats/datasets/census").access_request
    approve, deny = exchange_pb2.DECISION_OUTCOME_APPROVE, exchange_pb2.DECISION_OUTCOME_DENY
    decisions = {
        "signed by the owner's gateway": (approve, _decision(net, pending.name, approve)),
        "of another request": (approve, _decision(net, net.local_request.name, approve,
                                                  signer=bj.signing_key)),
        "of the other outcome": (approve, _decision(net, pending.name, deny,
                                                    signer=bj.signing_key)),
        "a denial without one": (deny, None),
    }
    outcome, decision = decisions[forgery]

    def decided(answer):
        request = answer.access_request
        if outcome == deny:
            request.state = exchange_pb2.ACCESS_REQUEST_STATE_DENIED
            return answer
        request.state = exchange_pb2.ACCESS_REQUEST_STATE_APPROVED
        request.signed_decision.CopyFrom(decision)
        grant = _forged_grant(net, request, request.name.replace("accessRequests", "grants"))
        request.grant = grant.name
        held[0] = grant
        return answer

    held = [None]

    def listed(page):
        if held[0] is not None:
            page.grants.append(held[0])
        return page

    try:
        with answering(net.members.gateway(GD), BJ,
                       {"GetAccessRequest": decided, "ListGrants": listed}):
            outcome_of_round = net.members.gateway(GD).carrier.poll()[BJ]
        assert "1 refused" in outcome_of_round
        assert INVALID in _refusals_by_bj(net, "exchange.request.learn")[-1]["reason"]
        assert gd.access_request(pending.name).state == PENDING  # bj's genuine answer
    finally:
        gd.withdraw_request(pending.name, "asked again later")


def test_xr_answers_an_unsigned_request_id_is_not_taken(net):
    """bj's answer whose unsigned copy of the statement names another request_id than the one
    gd-health signed: every field the requester signed is read from its signed statement,
    and the copy must say the same."""
    def renamed(answer):
        answer.access_request.statement.request_id = "kept-id"
        return answer

    with answering(net.members.gateway(GD), BJ, {"CreateAccessRequest": renamed}), \
            pytest.raises(DataLoss) as refused:
        ask(net.clients["gd-health"], "agencies/bj-stats/datasets/open", request_id="fresh-id")
    assert refused.value.reason == INVALID


def test_xr_answers_a_time_out_of_range_is_data_loss_in_calls_and_rounds(net):
    """A time no Timestamp holds is the member's fault, not the agency's: DATA_LOSS
    MEMBER_ANSWER_INVALID (not INVALID_ARGUMENT), audited with the member as actor, in a
    carried call and in a round alike."""
    gd = net.clients["gd-health"]

    def late(answer):
        request = getattr(answer, "access_request", answer)
        request.decide_deadline.seconds = 2 ** 60
        return answer

    with answering(net.members.gateway(GD), BJ, {"CreateAccessRequest": late}), \
            pytest.raises(DataLoss) as refused:
        ask(gd, "agencies/bj-stats/datasets/open", request_id="time-id")
    assert refused.value.reason == INVALID
    assert "timestamp" in _refusals_by_bj(net, "exchange.request.create")[-1]["reason"]

    pending = ask(gd, "agencies/bj-stats/datasets/wages").access_request
    try:
        with answering(net.members.gateway(GD), BJ, {"GetAccessRequest": late}):
            assert "1 refused" in net.members.gateway(GD).carrier.poll()[BJ]
        assert "timestamp" in _refusals_by_bj(net, "exchange.request.learn")[-1]["reason"]
    finally:
        gd.withdraw_request(pending.name, "asked again later")


def test_xr_hostile_member_one_bad_answer_never_stops_the_round(net):
    """Of two requests PENDING at bj, bj answers one with nonsense and bj-stats denies the
    other: the round refuses the first and learns the second."""
    gd, bj = net.clients["gd-health"], net.clients["bj-stats"]
    first = ask(gd, "agencies/bj-stats/datasets/census").access_request
    second = ask(gd, "agencies/bj-stats/datasets/wages").access_request
    bj.deny(second.name, "wages stay in Beijing")

    def nonsense(answer):
        if answer.access_request.name == first.name:
            answer.access_request.requester = "agencies/bj-stats"
        return answer

    try:
        with answering(net.members.gateway(GD), BJ, {"GetAccessRequest": nonsense}):
            assert net.members.gateway(GD).carrier.poll()[BJ].startswith(
                "1 learned; 1 refused")
        assert gd.access_request(second.name).state == exchange_pb2.ACCESS_REQUEST_STATE_DENIED
    finally:
        gd.withdraw_request(first.name, "asked again later")


def test_xr_hostile_member_error_metadata_is_passed_on_under_the_members_name(
        net, monkeypatch):
    """bj refuses with ErrorInfo metadata of its choosing, keys this gateway uses among them:
    passed on as it came, but `network_member` names bj whatever bj says; the round goes on."""
    gd = net.clients["gd-health"]
    pending = ask(gd, "agencies/bj-stats/datasets/census").access_request

    def refuse(call, name):
        refusal = errors.NotFound("gone", reason="GONE")
        refusal.metadata = {"network_member": "zz", "reason": "r", "message": "m", "code": "c"}
        raise refusal

    monkeypatch.setattr(net.members.gateway(BJ).exchange, "get_request", refuse)
    try:
        with pytest.raises(NotFound) as refused:
            gd.access_request(pending.name)
        assert refused.value.reason == "GONE"
        assert refused.value.metadata == {"network_member": BJ, "reason": "r", "message": "m",
                                          "code": "c"}
        assert net.members.gateway(GD).carrier.poll()[BJ].endswith("learned")
    finally:
        monkeypatch.undo()
        gd.withdraw_request(pending.name, "asked again later")


def test_xr_hostile_member_endless_pages_end_the_round(net, monkeypatch):
    """bj answers ListGrants with a next page forever: a round asks MAX_PAGES pages of it and
    ends."""
    asked = []

    def endless(call, request):
        asked.append(request.page_token)
        return Page(items=[], next_page_token="more")

    monkeypatch.setattr(net.members.gateway(BJ).exchange, "list_grants", endless)
    ask(net.clients["gd-health"], "agencies/bj-stats/datasets/open")  # a grant in force
    assert net.members.gateway(GD).carrier.poll()[BJ].endswith("learned")
    assert len(asked) == MAX_PAGES


def test_xr_answers_lost_after_the_owner_committed_are_recovered_by_a_retry(net):
    """bj commits a request and its answer is lost on the way: nothing is kept at gd, the
    request_id is bj's to hold (REQUEST_ID_REUSED for another statement), and the agency
    asking the same again, signed anew, gets bj's first answer, kept at gd then."""
    gd = net.clients["gd-health"]
    statement = gd.access_request_statement(
        "agencies/bj-stats/datasets/open", purpose="STATISTICS", purpose_text="lost",
        legal_basis="Statistics Law of the PRC, article 7", request_id="lost-1")
    envelope = envelopes.seal(gd.signing_key, envelopes.ACCESS_REQUEST, statement)

    def lost(answer):
        raise errors.Unavailable("the answer was lost", reason="MEMBER_UNAVAILABLE", member=BJ)

    with answering(net.members.gateway(GD), BJ, {"CreateAccessRequest": lost}), \
            pytest.raises(Unavailable):
        gd.send_access_request(envelope)
    with pytest.raises(AlreadyExists) as reused:
        ask(gd, "agencies/bj-stats/datasets/prices", request_id="lost-1")
    assert reused.value.reason == "REQUEST_ID_REUSED"

    again = ask(gd, "agencies/bj-stats/datasets/open", purpose_text="lost", request_id="lost-1")
    assert again.access_request.signed_statement == envelope  # the first, as bj holds it
    assert again.access_request.name in {r.name for r in gd.access_requests()}
