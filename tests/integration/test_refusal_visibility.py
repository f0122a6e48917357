"""A dataset an agency may not see answers as a name that does not exist, on every path.

A CONFIDENTIAL dataset of any sharing type, withdrawn or not, and a name nobody published under
a registered agency: CreateAccessRequest (real call and dry run) records a PENDING request the
owner decides, with the same reason; FetchDataset, WatchEvents and GetDataset refuse alike. No
answer carries the hidden dataset's terms, legal basis or schema.
"""

from __future__ import annotations

from functools import partial

import grpc
import pytest

from agencies import errors
from gateway.v1 import audit_pb2, exchange_pb2
from tests.support.exchange import (
    TABLES,
    ask,
    assert_only_refusal,
    counts,
    last_leaf,
    publish,
)
from tests.support.visibility import MISSING, anonymous, answer, assert_tells_nothing

SHARING_TYPES = ("UNCONDITIONAL", "CONDITIONAL", "NOT_SHARED")


@pytest.fixture
def parties(network):
    return network.agency("gd-health"), network.agency("sz-market")


def hide(health, sharing_type: str, withdrawn: bool) -> str:
    """A CONFIDENTIAL dataset of gd-health with these terms: its name."""
    dataset = publish(health, "case-files", classification="CONFIDENTIAL",
                      sharing_type=sharing_type)
    if withdrawn:
        health.withdraw(dataset, "merged into case-files-2")
    return dataset


def refusal(call, name: str) -> tuple:
    """What refusing `call(name)` told, the name aside."""
    with pytest.raises(errors.GovshareError) as caught:
        call(name)
    error = caught.value
    return (error.code, error.reason, anonymous(error.message, name),
            {key: anonymous(value, name) for key, value in error.metadata.items()})


HIDDEN = [pytest.param(sharing, withdrawn, id=f"{sharing}-{'withdrawn' if withdrawn else 'active'}")
          for sharing in SHARING_TYPES for withdrawn in (False, True)]


@pytest.mark.parametrize("sharing_type, withdrawn", HIDDEN)
def test_asking_for_a_hidden_dataset_answers_as_for_a_name_never_published(
        network, parties, sharing_type, withdrawn):
    health, market = parties
    hidden = hide(health, sharing_type, withdrawn)

    dry = {name: ask(market, name, validate_only=True) for name in (hidden, MISSING)}
    before = counts(network)
    real = {name: ask(market, name) for name in (hidden, MISSING)}

    assert answer(dry[hidden], hidden) == answer(dry[MISSING], MISSING)
    assert answer(real[hidden], hidden) == answer(real[MISSING], MISSING)
    assert answer(dry[hidden], hidden) == answer(real[hidden], hidden)  # no write on the dry run
    assert dry[hidden].access_request.name == ""
    request = real[hidden].access_request
    assert request.state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING
    assert not real[hidden].HasField("grant")
    assert request.state_reason.startswith(
        f"the owner of agencies/gd-health decides whether to share {hidden} with you, by ")
    assert_tells_nothing(*(r.access_request.state_reason for r in (*dry.values(), *real.values())))
    after = counts(network)
    assert (after["access_requests"], after["grants"]) == \
        (before["access_requests"] + 2, before["grants"])
    # The owner sees both requests, and decides them.
    incoming = {r.dataset: r for r in health.access_requests("INCOMING")}
    assert incoming[hidden].name == request.name
    assert incoming[MISSING].state_reason == real[MISSING].access_request.state_reason


@pytest.mark.parametrize("sharing_type, withdrawn", HIDDEN)
def test_a_dry_run_on_a_hidden_dataset_writes_nothing(network, parties, sharing_type,
                                                      withdrawn):
    health, market = parties
    hidden = hide(health, sharing_type, withdrawn)
    before = counts(network)

    ask(market, hidden, validate_only=True)

    after = counts(network)
    assert {table: after[table] for table in TABLES} == {table: before[table] for table in TABLES}
    assert list(health.access_requests("INCOMING")) == []


@pytest.mark.parametrize("sharing_type, withdrawn", HIDDEN)
def test_fetching_watching_and_reading_a_hidden_dataset_answer_as_for_a_name_never_published(
        network, parties, tmp_path, sharing_type, withdrawn):
    health, market = parties
    hidden = hide(health, sharing_type, withdrawn)
    paths = {
        "fetch": lambda name: market.fetch(name, tmp_path / "out"),
        "watch": lambda name: next(market.watch(follow=[name])),
        "get": lambda name: market.get(name),
        "versions": lambda name: list(market.versions(name)),
    }
    for path, call in paths.items():
        seen = refusal(call, hidden)
        assert seen == refusal(call, MISSING), path
        assert_tells_nothing(seen[2])
        assert not (tmp_path / "out").exists()


def test_guessed_field_names_of_a_hidden_dataset_are_not_confirmed(network, parties):
    health, market = parties
    hidden = hide(health, "CONDITIONAL", False)
    right = ask(market, hidden, fields=["region"], request_id="a1")
    health.deny(right.access_request.name, "not now")
    wrong = ask(market, hidden, fields=["salary"], request_id="a2")

    assert right.access_request.state_reason == wrong.access_request.state_reason
    # The owner, who sees its schema, is told which fields its dataset lacks.
    with pytest.raises(errors.GovshareError) as caught:
        health.approve(wrong.access_request.name)
    assert (caught.value.code, caught.value.reason) == \
        (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_UNKNOWN")
    assert caught.value.metadata["fields"] == "salary"
    assert "the request names fields that" in caught.value.message


@pytest.mark.parametrize("closed, code, reason", [
    ("never-published", grpc.StatusCode.NOT_FOUND, "DATASET_NOT_FOUND"),
    ("NOT_SHARED", grpc.StatusCode.FAILED_PRECONDITION, "DATASET_NOT_SHARED"),
    ("withdrawn", grpc.StatusCode.FAILED_PRECONDITION, "DATASET_WITHDRAWN"),
])
def test_the_owner_cannot_approve_what_it_does_not_share_and_denies_it(network, parties,
                                                                       closed, code, reason):
    health, market = parties
    dataset = (MISSING if closed == "never-published" else
               hide(health, "NOT_SHARED" if closed == "NOT_SHARED" else "CONDITIONAL",
                    closed == "withdrawn"))
    request = ask(market, dataset).access_request
    before = counts(network)

    with pytest.raises(errors.GovshareError) as caught:
        health.approve(request.name)

    assert (caught.value.code, caught.value.reason) == (code, reason)
    assert caught.value.metadata["dataset"] == dataset
    assert counts(network)["grants"] == before["grants"]
    leaf = last_leaf(network)
    assert (leaf["action"], leaf["outcome"]) == ("exchange.request.approve", "REFUSED")
    denied = health.deny(request.name, "we do not share this")
    assert denied.state == exchange_pb2.ACCESS_REQUEST_STATE_DENIED
    assert market.access_request(request.name).state_reason == "we do not share this"


@pytest.mark.parametrize("closed, fields, reason", [
    ("never-published", [], "DATASET_NOT_FOUND"),
    ("NOT_SHARED", [], "DATASET_NOT_SHARED"),
    ("withdrawn", [], "DATASET_WITHDRAWN"),
    ("CONDITIONAL", ["salary"], "FIELD_UNKNOWN"),
])
def test_reading_the_audit_log_after_the_owner_fails_to_approve_tells_the_requester_nothing(
        network, parties, closed, fields, reason):
    health, market = parties
    dataset = (MISSING if closed == "never-published" else
               hide(health, "CONDITIONAL" if closed == "withdrawn" else closed,
                    closed == "withdrawn"))
    request = ask(market, dataset, fields=fields).access_request
    with pytest.raises(errors.GovshareError) as caught:
        health.approve(request.name)
    assert caught.value.reason == reason
    leaf = network.gateway.db.reader().execute("SELECT MAX(leaf_index) FROM audit_leaves"
                                               ).fetchone()[0]
    refused = f"auditEvents/{leaf}"

    listed = list(market.audit_events(dataset=dataset))
    assert [(e.action, e.outcome) for e in listed] == [
        ("exchange.request.create", audit_pb2.OUTCOME_ALLOWED)]
    assert list(market.audit_events(dataset=dataset, outcome="REFUSED")) == []
    assert list(market.audit_events(agency="agencies/gd-health", outcome="REFUSED")) == []
    assert_tells_nothing(*(str(e) for e in listed))
    before = counts(network)
    with pytest.raises(errors.PermissionDenied) as hidden:
        market.audit_event(leaf)
    assert (hidden.value.code, hidden.value.reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                                        "EVENT_NOT_VISIBLE")
    assert hidden.value.message == (
        f"{refused} does not concern agencies/sz-market (or does not exist); agencies read only"
        " the events that name them, and of refused calls only their own and those on their"
        " datasets")
    assert hidden.value.metadata == {"name": refused}
    assert_only_refusal(network, before, "audit.get", "EVENT_NOT_VISIBLE")
    # The owner reads its own refusal, and the auditor every one.
    own = list(health.audit_events(dataset=dataset, outcome="REFUSED"))
    assert [(e.name, e.action) for e in own] == [(refused, "exchange.request.approve")]
    auditor = network.auditor()
    seen = auditor.audit.GetAuditEvent(audit_pb2.GetAuditEventRequest(name=refused))
    assert seen.audit_event.reason.startswith(reason)


def test_a_hidden_unconditional_dataset_is_granted_only_by_its_owner(network, parties,
                                                                     tmp_path):
    health, market = parties
    hidden = hide(health, "UNCONDITIONAL", False)
    request = ask(market, hidden, fields=["region"]).access_request

    approved = health.approve(request.name)

    signed = exchange_pb2.GrantStatement.FromString(approved.grant.signed_statement.payload)
    assert signed.basis == exchange_pb2.GRANT_BASIS_OWNER_APPROVAL
    assert list(approved.grant.fields) == list(signed.fields) == ["region"]
    assert market.get(hidden).name == hidden
    fetched = market.fetch(hidden, tmp_path / "cases.csv")
    assert fetched.fields == ["region"]


@pytest.mark.parametrize("validate_only", [False, True], ids=["real", "dry-run"])
def test_asking_under_an_agency_that_is_not_registered_is_not_found(network, parties,
                                                                    validate_only):
    _, market = parties
    name = "agencies/no-such-agency/datasets/anything"
    before = counts(network)

    code, reason, message, metadata = refusal(partial(ask, market, validate_only=validate_only),
                                              name)

    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "AGENCY_NOT_FOUND")
    assert metadata == {"agency": "agencies/no-such-agency", "dataset": "<dataset>"}
    assert "agencies/no-such-agency is not a registered agency" in message
    after = counts(network)
    assert {table: after[table] for table in TABLES} == {table: before[table] for table in TABLES}
    assert after["audit_leaves"] == before["audit_leaves"] + 1


def test_flooding_an_owner_with_guessed_names_is_capped(network_factory):
    network = network_factory(exchange={"max_pending_requests": 3})
    health, market = network.agency("gd-health"), network.agency("sz-market")
    stats = network.agency("zj-stats")
    hidden = hide(health, "CONDITIONAL", False)
    visible = publish(health, "visits", sharing_type="CONDITIONAL")
    first = ask(market, hidden).access_request
    for guess in ("guess-1", "guess-2"):
        ask(market, f"agencies/gd-health/datasets/{guess}")
    before = counts(network)

    for name in ("agencies/gd-health/datasets/guess-3", visible):
        for validate_only in (True, False):
            code, reason, message, metadata = refusal(
                partial(ask, market, validate_only=validate_only), name)
            assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                      "TOO_MANY_PENDING_REQUESTS")
            assert message.startswith("you have 3 PENDING access requests to agencies/gd-health")
            assert metadata == {"agency": "agencies/gd-health", "limit": "3"}
            leaf = last_leaf(network)
            assert (leaf["action"], leaf["outcome"]) == ("exchange.request.create", "REFUSED")

    after = counts(network)
    assert after["access_requests"] == before["access_requests"]
    # Another owner is not affected, and a withdrawn request frees a place.
    own = publish(stats, "gdp", sharing_type="CONDITIONAL")
    assert ask(market, own).access_request.state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING
    market.withdraw_request(first.name, "asked too early")
    assert ask(market, MISSING).access_request.state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING


def test_withdrawing_a_hidden_dataset_tells_its_requesters_nothing(network, parties):
    health, market = parties
    stats = network.agency("zj-stats")
    hidden = hide(health, "CONDITIONAL", False)
    asked = ask(market, hidden).access_request
    missing = ask(market, MISSING).access_request
    granted = ask(stats, hidden).access_request
    health.approve(granted.name)  # stats may see it now
    renewal = ask(stats, hidden, request_id="renewal").access_request

    health.withdraw(hidden, "merged into case-files-2")

    now = market.access_request(asked.name)
    assert (now.state, anonymous(now.state_reason, hidden)) == \
        (market.access_request(missing.name).state,
         anonymous(market.access_request(missing.name).state_reason, MISSING))
    assert now.state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING
    conn = network.gateway.db.reader()
    assert conn.execute("SELECT COUNT(*) FROM events WHERE recipient = 'sz-market'"
                        ).fetchone()[0] == 0
    # An agency that may see the dataset is told; the owner decides the rest.
    assert stats.access_request(renewal.name).state == exchange_pb2.ACCESS_REQUEST_STATE_WITHDRAWN
    code, reason, _, _ = refusal(health.approve, asked.name)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DATASET_WITHDRAWN")
    assert health.deny(asked.name, "we do not share this").state == \
        exchange_pb2.ACCESS_REQUEST_STATE_DENIED
