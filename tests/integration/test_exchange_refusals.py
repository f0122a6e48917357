"""Every refusal of the exchange: its status, its reason, its audit event and nothing else."""

from __future__ import annotations

import threading
from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from agencies import errors
from gateway.v1 import exchange_pb2
from govshare import envelopes
from tests.support.exchange import (
    ask,
    assert_only_refusal,
    counts,
    last_leaf,
    publish,
    wait_for,
)


@pytest.fixture
def parties(network):
    health, market, stats = (network.agency(a) for a in ("gd-health", "sz-market", "zj-stats"))
    return health, market, stats


def refused(network, call, code: grpc.StatusCode, reason: str, action: str):
    """Run `call`, expect the refusal, and check it left only its audit event."""
    before = counts(network)
    with pytest.raises(errors.GovshareError) as caught:
        call()
    assert (caught.value.code, caught.value.reason) == (code, reason)
    assert_only_refusal(network, before, action, reason)
    return caught.value


def test_fetch_without_grant(network, parties, tmp_path):
    health, market, _ = parties
    dataset = publish(health, "hospital-beds", classification="PUBLIC")
    error = refused(network, lambda: market.fetch(dataset, tmp_path / "x"),
                    grpc.StatusCode.PERMISSION_DENIED, "NO_ACTIVE_GRANT", "exchange.fetch")
    assert "request access first" in error.message


def test_fetch_with_expired_grant(network, parties, tmp_path):
    health, market, _ = parties
    dataset = publish(health, "hospital-beds")
    ask(market, dataset, duration=timedelta(seconds=1))
    wait_for(lambda: list(market.grants(state="EXPIRED")), seconds=5)
    refused(network, lambda: market.fetch(dataset, tmp_path / "x"),
            grpc.StatusCode.PERMISSION_DENIED, "NO_ACTIVE_GRANT", "exchange.fetch")


def test_wrong_owner_approving(network, parties):
    health, market, stats = parties
    request = ask(market, publish(health, "visits", sharing_type="CONDITIONAL")).access_request
    refused(network, lambda: stats.approve(request.name), grpc.StatusCode.PERMISSION_DENIED,
            "NOT_OWNER", "exchange.request.approve")


def test_approving_twice(network, parties):
    health, market, _ = parties
    request = ask(market, publish(health, "visits", sharing_type="CONDITIONAL")).access_request
    health.approve(request.name)
    refused(network, lambda: health.approve(request.name), grpc.StatusCode.FAILED_PRECONDITION,
            "REQUEST_NOT_PENDING", "exchange.request.approve")


@pytest.mark.parametrize("reason", ["", " \n "], ids=["empty", "blank"])
def test_deny_without_reason(network, parties, reason):
    health, market, _ = parties
    request = ask(market, publish(health, "visits", sharing_type="CONDITIONAL")).access_request
    error = refused(network, lambda: health.deny(request.name, reason),
                    grpc.StatusCode.INVALID_ARGUMENT, "REASON_REQUIRED", "exchange.request.deny")
    assert "a denial needs signed_decision.reason" in error.message
    assert health.access_request(request.name).state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING


def test_request_signed_by_another_agency(network, parties):
    health, market, stats = parties
    dataset = publish(health, "hospital-beds")
    statement = market.access_request_statement(dataset, purpose="STATISTICS",
                                                purpose_text="t", legal_basis="l")
    forged = envelopes.seal(stats.signing_key, envelopes.ACCESS_REQUEST, statement)
    refused(network, lambda: market.send_access_request(forged),
            grpc.StatusCode.PERMISSION_DENIED, "SIGNER_NOT_CALLER", "exchange.request.create")


@pytest.mark.parametrize("offset", [timedelta(hours=-1), timedelta(hours=1)],
                         ids=["stale", "future"])
def test_create_time_outside_the_skew_window(network, parties, offset):
    health, market, _ = parties
    dataset = publish(health, "hospital-beds")
    statement = market.access_request_statement(dataset, purpose="STATISTICS",
                                                purpose_text="t", legal_basis="l")
    moment = timestamp_pb2.Timestamp()
    moment.FromDatetime(statement.create_time.ToDatetime() + offset)
    statement.create_time.CopyFrom(moment)
    envelope = envelopes.seal(market.signing_key, envelopes.ACCESS_REQUEST, statement)
    error = refused(network, lambda: market.send_access_request(envelope),
                    grpc.StatusCode.INVALID_ARGUMENT, "CLOCK_SKEW", "exchange.request.create")
    assert "gateway_time" in error.metadata


def test_replayed_request_id_with_different_content(network, parties):
    health, market, _ = parties
    dataset = publish(health, "hospital-beds")
    ask(market, dataset, request_id="9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d")
    error = refused(
        network,
        lambda: ask(market, dataset, request_id="9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
                    purpose_text="something else"),
        grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED", "exchange.request.create")
    assert "access_request" in error.metadata


def test_not_shared_dataset(network, parties):
    health, market, _ = parties
    dataset = publish(health, "secret-stats", sharing_type="NOT_SHARED")
    refused(network, lambda: ask(market, dataset), grpc.StatusCode.FAILED_PRECONDITION,
            "DATASET_NOT_SHARED", "exchange.request.create")


def test_withdrawn_dataset(network, parties):
    health, market, _ = parties
    dataset = publish(health, "old-stats")
    health.withdraw(dataset, "superseded")
    refused(network, lambda: ask(market, dataset), grpc.StatusCode.FAILED_PRECONDITION,
            "DATASET_WITHDRAWN", "exchange.request.create")


def test_confidential_dataset_is_requested_by_exact_name_only(network, parties):
    health, market, _ = parties
    dataset = publish(health, "case-files", classification="CONFIDENTIAL",
                      sharing_type="CONDITIONAL")
    assert dataset not in [d.name for d in market.datasets()]
    refused(network, lambda: market.get(dataset), grpc.StatusCode.PERMISSION_DENIED,
            "DATASET_NOT_VISIBLE", "catalog.get")
    request = ask(market, dataset).access_request
    assert request.state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING
    health.approve(request.name)
    assert market.get(dataset).name == dataset


def test_only_parties_read_a_request(network, parties):
    health, market, stats = parties
    request = ask(market, publish(health, "visits", sharing_type="CONDITIONAL")).access_request
    refused(network, lambda: stats.access_request(request.name),
            grpc.StatusCode.PERMISSION_DENIED, "NOT_A_PARTY", "exchange.request.get")


def test_revoke_by_grantee_is_refused_and_by_admin_allowed(network, parties):
    health, market, _ = parties
    grant = ask(market, publish(health, "hospital-beds")).grant
    refused(network, lambda: market.revoke(grant.name, "mine"),
            grpc.StatusCode.PERMISSION_DENIED, "NOT_OWNER", "exchange.grant.revoke")
    admin = network.admin()
    response = admin._call(admin.exchange.RevokeGrant,
                           exchange_pb2.RevokeGrantRequest(name=grant.name, reason="audit"))
    assert response.grant.state == exchange_pb2.GRANT_STATE_REVOKED
    refused(network, lambda: health.revoke(grant.name, "again"),
            grpc.StatusCode.FAILED_PRECONDITION, "GRANT_NOT_ACTIVE", "exchange.grant.revoke")


def test_parent_must_be_the_caller(network, parties):
    _, market, _ = parties
    request = exchange_pb2.ListGrantsRequest(parent="agencies/gd-health",
                                             direction=exchange_pb2.DIRECTION_INCOMING)
    refused(network, lambda: market._call(market.exchange.ListGrants, request),
            grpc.StatusCode.PERMISSION_DENIED, "PARENT_NOT_CALLER", "exchange.grant.list")


def test_approving_after_the_dataset_became_not_shared(network, parties):
    health, market, _ = parties
    dataset = publish(health, "visits", sharing_type="CONDITIONAL")
    request = ask(market, dataset).access_request
    publish(health, "visits", b"region,beds\n3,4\n", sharing_type="NOT_SHARED")
    refused(network, lambda: health.approve(request.name), grpc.StatusCode.FAILED_PRECONDITION,
            "DATASET_NOT_SHARED", "exchange.request.approve")
    assert health.deny(request.name, "no longer shared").state == \
        exchange_pb2.ACCESS_REQUEST_STATE_DENIED


def test_approving_for_a_suspended_requester(network, parties):
    health, market, _ = parties
    request = ask(market, publish(health, "visits", sharing_type="CONDITIONAL")).access_request
    network.admin().suspend_agency("agencies/sz-market", "under investigation")
    error = refused(network, lambda: health.approve(request.name),
                    grpc.StatusCode.FAILED_PRECONDITION, "REQUESTER_SUSPENDED",
                    "exchange.request.approve")
    assert "under investigation" in error.message


def test_approving_a_request_closed_by_a_withdrawal(network, parties):
    health, market, _ = parties
    dataset = publish(health, "visits", sharing_type="CONDITIONAL")
    request = ask(market, dataset).access_request
    health.withdraw(dataset, "superseded")
    error = refused(network, lambda: health.approve(request.name),
                    grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_NOT_PENDING",
                    "exchange.request.approve")
    assert "withdrawn" in error.message and "decided already" not in error.message


@pytest.mark.parametrize("narrowing", [
    {"duration": timedelta(days=31)},
    {"duration": timedelta(0)},
    {"fields": ["region", "beds"]},
    {"fields": ["nope"]},
], ids=["longer", "zero-duration", "more-fields", "unknown-field"])
def test_approving_wider_than_asked(network, parties, narrowing):
    health, market, _ = parties
    dataset = publish(health, "visits", sharing_type="CONDITIONAL")
    request = ask(market, dataset, duration=timedelta(days=30), fields=["region"]).access_request
    reason = "FIELDS_NOT_REQUESTED" if "fields" in narrowing else "INVALID_ARGUMENT"
    error = refused(network, lambda: health.approve(request.name, **narrowing),
                    grpc.StatusCode.INVALID_ARGUMENT, reason, "exchange.request.approve")
    assert error.metadata["field"] == f"signed_decision.{next(iter(narrowing))}"


def test_deny_with_a_reason_too_long(network, parties):
    health, market, _ = parties
    request = ask(market, publish(health, "visits", sharing_type="CONDITIONAL")).access_request
    error = refused(network, lambda: health.deny(request.name, "x" * 1001),
                    grpc.StatusCode.INVALID_ARGUMENT, "REASON_TOO_LONG", "exchange.request.deny")
    assert "too long" in error.message
    assert health.access_request(request.name).state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING


@pytest.mark.parametrize("validate_only", [False, True], ids=["real", "dry-run"])
@pytest.mark.parametrize("closed, reason", [("NOT_SHARED", "DATASET_NOT_SHARED"),
                                            ("WITHDRAWN", "DATASET_WITHDRAWN")])
def test_dry_run_refuses_as_the_real_call(network, parties, validate_only, closed, reason):
    health, market, _ = parties
    if closed == "WITHDRAWN":
        dataset = publish(health, "old-stats")
        health.withdraw(dataset, "superseded")
    else:
        dataset = publish(health, "secret-stats", sharing_type="NOT_SHARED")
    refused(network, lambda: ask(market, dataset, validate_only=validate_only),
            grpc.StatusCode.FAILED_PRECONDITION, reason, "exchange.request.create")


def test_dry_run_with_a_request_id_used_for_another_statement(network, parties):
    health, market, _ = parties
    dataset = publish(health, "hospital-beds")
    ask(market, dataset, request_id="rid-2")
    refused(network, lambda: ask(market, dataset, request_id="rid-2", purpose_text="other",
                                 validate_only=True),
            grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED", "exchange.request.create")


@pytest.mark.parametrize("method, fields, field", [
    ("ListAccessRequests", {"state": 99}, "state"),
    ("ListGrants", {"state": 99}, "state"),
    ("ListAccessRequests", {"direction": 7}, "direction"),
    ("ListGrants", {"direction": 7}, "direction"),
])
def test_unknown_enum_values_in_list_filters(network, parties, method, fields, field):
    _, market, _ = parties
    request = getattr(exchange_pb2, f"{method}Request")(parent=market.name, **{"direction": 1,
                                                                              **fields})
    action = {"ListAccessRequests": "exchange.request.list",
              "ListGrants": "exchange.grant.list"}[method]
    error = refused(network, lambda: market._call(getattr(market.exchange, method), request),
                    grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", action)
    assert error.metadata["field"] == field


@pytest.mark.parametrize("decide", [False, True], ids=["request", "approval"])
def test_duration_with_mixed_signs(network, parties, decide):
    health, market, _ = parties
    dataset = publish(health, "visits", sharing_type="CONDITIONAL")
    statement = market.access_request_statement(dataset, purpose="STATISTICS", purpose_text="t",
                                                legal_basis="l")
    mixed = duration_pb2.Duration(seconds=86_400, nanos=-5)
    if decide:
        name = market.send_access_request(
            envelopes.seal(market.signing_key, envelopes.ACCESS_REQUEST, statement)
        ).access_request.name
        decision = exchange_pb2.DecisionStatement.FromString(
            health.decision(name, exchange_pb2.DECISION_OUTCOME_APPROVE).payload)
        decision.duration.CopyFrom(mixed)
        request = exchange_pb2.ApproveAccessRequestRequest(
            name=name, signed_decision=envelopes.seal(health.signing_key, envelopes.DECISION,
                                                       decision))
        call, field = (lambda: health._call(health.exchange.ApproveAccessRequest, request),
                       "signed_decision.duration")
    else:
        statement.duration.CopyFrom(mixed)
        envelope = envelopes.seal(market.signing_key, envelopes.ACCESS_REQUEST, statement)
        call, field = lambda: market.send_access_request(envelope), "signed_statement.duration"
    error = refused(network, call, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                    "exchange.request.approve" if decide else "exchange.request.create")
    assert error.metadata["field"] == field


@pytest.mark.parametrize("validate_only", [False, True], ids=["real", "dry-run"])
def test_a_second_request_while_one_is_pending(network, parties, validate_only):
    health, market, stats = parties
    dataset = publish(health, "visits", sharing_type="CONDITIONAL")
    first = ask(market, dataset).access_request

    error = refused(network, lambda: ask(market, dataset, validate_only=validate_only),
                    grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ALREADY_PENDING",
                    "exchange.request.create")

    assert error.metadata["access_request"] == first.name and first.name in error.message
    assert first.name in last_leaf(network)["record"]
    assert ask(stats, dataset).access_request.state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING
    health.deny(first.name, "name the report the figures are for")
    again = ask(market, dataset, validate_only=validate_only).access_request
    assert again.state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING


def test_renewing_while_a_grant_is_active_is_asked_once(network, parties):
    health, market, _ = parties
    dataset = publish(health, "visits", sharing_type="CONDITIONAL")
    health.approve(ask(market, dataset).access_request.name)
    renewal = ask(market, dataset).access_request
    assert renewal.state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING
    refused(network, lambda: ask(market, dataset), grpc.StatusCode.FAILED_PRECONDITION,
            "REQUEST_ALREADY_PENDING", "exchange.request.create")


def test_concurrent_new_requests_make_one_pending_request(network, parties):
    health, market, _ = parties
    dataset = publish(health, "visits", sharing_type="CONDITIONAL")
    sealed = [envelopes.seal(market.signing_key, envelopes.ACCESS_REQUEST,
                             market.access_request_statement(
                                 dataset, purpose="STATISTICS", purpose_text="t",
                                 legal_basis="l"))
              for _ in range(8)]
    outcomes: list[str] = []

    def send(envelope) -> None:
        try:
            outcomes.append(market.send_access_request(envelope).access_request.name)
        except errors.GovshareError as error:
            outcomes.append(error.reason)

    threads = [threading.Thread(target=send, args=(envelope,)) for envelope in sealed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    created = [outcome for outcome in outcomes if outcome != "REQUEST_ALREADY_PENDING"]
    assert len(outcomes) == 8 and len(created) == 1
    assert [r.name for r in market.access_requests()] == created


@pytest.mark.parametrize("decide", ["approve", "deny"])
def test_deciding_a_request_its_requester_withdrew(network, parties, decide):
    health, market, _ = parties
    request = ask(market, publish(health, "visits", sharing_type="CONDITIONAL")).access_request
    market.withdraw_request(request.name, "asked for the wrong quarter")
    call = (lambda: health.approve(request.name)) if decide == "approve" else \
        (lambda: health.deny(request.name, "too late"))
    error = refused(network, call, grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_NOT_PENDING",
                    f"exchange.request.{decide}")
    assert error.metadata["state"] == "WITHDRAWN"
    assert "withdrawn by its requester: asked for the wrong quarter" in error.message
    assert "decided already" not in error.message


@pytest.mark.parametrize("who", ["owner", "other agency"])
def test_only_the_requester_withdraws(network, parties, who):
    health, market, stats = parties
    request = ask(market, publish(health, "visits", sharing_type="CONDITIONAL")).access_request
    caller = health if who == "owner" else stats
    error = refused(network, lambda: caller.withdraw_request(request.name, "not wanted"),
                    grpc.StatusCode.PERMISSION_DENIED, "NOT_REQUESTER",
                    "exchange.request.withdraw")
    assert "agencies/sz-market" in error.message
    assert health.access_request(request.name).state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING


def test_withdrawing_another_agencys_request_says_nothing_of_its_existence(network, parties):
    _, _, stats = parties
    unknown = "agencies/sz-market/accessRequests/" + "0" * 32
    refused(network, lambda: stats.withdraw_request(unknown, "not wanted"),
            grpc.StatusCode.PERMISSION_DENIED, "NOT_REQUESTER", "exchange.request.withdraw")
    own = "agencies/zj-stats/accessRequests/" + "0" * 32
    refused(network, lambda: stats.withdraw_request(own, "not wanted"),
            grpc.StatusCode.NOT_FOUND, "NOT_FOUND", "exchange.request.withdraw")


@pytest.mark.parametrize("closed", ["APPROVED", "DENIED", "WITHDRAWN"])
def test_withdrawing_a_request_that_is_not_pending(network, parties, closed):
    health, market, _ = parties
    if closed == "APPROVED":  # granted at once
        request = ask(market, publish(health, "beds")).access_request
    else:
        request = ask(market, publish(health, "visits", sharing_type="CONDITIONAL")
                      ).access_request
        if closed == "DENIED":
            health.deny(request.name, "no legal basis")
        else:
            market.withdraw_request(request.name, "first time")
    error = refused(network, lambda: market.withdraw_request(request.name, "again"),
                    grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_NOT_PENDING",
                    "exchange.request.withdraw")
    assert error.metadata["state"] == closed
    assert market.access_request(request.name).state == \
        exchange_pb2.AccessRequestState.Value(f"ACCESS_REQUEST_STATE_{closed}")


@pytest.mark.parametrize("reason", ["", "x" * 501], ids=["missing", "too-long"])
def test_withdrawing_needs_a_reason(network, parties, reason):
    health, market, _ = parties
    request = ask(market, publish(health, "visits", sharing_type="CONDITIONAL")).access_request
    error = refused(network, lambda: market.withdraw_request(request.name, reason),
                    grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                    "exchange.request.withdraw")
    assert error.metadata["field"] == "reason"
    assert market.access_request(request.name).state == \
        exchange_pb2.ACCESS_REQUEST_STATE_PENDING


def test_revoke_needs_a_reason(network, parties):
    health, market, _ = parties
    grant = ask(market, publish(health, "hospital-beds")).grant
    error = refused(network, lambda: health.revoke(grant.name, "   "),
                    grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "exchange.grant.revoke")
    assert error.metadata["field"] == "reason"
    assert "reason is required" in error.message
    assert next(market.grants()).state == exchange_pb2.GRANT_STATE_ACTIVE


@pytest.mark.parametrize(("field", "value"), [
    ("purpose_text", " \t"), ("legal_basis", ""), ("purpose_text", "statistics\0report"),
], ids=["blank-purpose", "no-legal-basis", "nul-in-purpose"])
def test_request_text_must_say_something(network, parties, field, value):
    health, market, _ = parties
    dataset = publish(health, "hospital-beds")
    error = refused(network, lambda: ask(market, dataset, **{field: value}),
                    grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                    "exchange.request.create")
    assert error.metadata["field"] == f"signed_statement.{field}"
    assert error.message.startswith(f"signed_statement.{field} ")


@pytest.mark.parametrize(("fields", "field", "says"), [
    (["region", "region"], "signed_statement.fields", "names region more than once"),
    (["region", ""], "signed_statement.fields[1]", "signed_statement.fields[1] "),
    (["x" * 65], "signed_statement.fields[0]", "signed_statement.fields[0] "),
], ids=["repeated", "empty", "too-long"])
@pytest.mark.parametrize("hidden", [False, True], ids=["visible", "hidden"])
def test_requested_field_names_must_be_schema_names(network, parties, fields, field, says,
                                                    hidden):
    health, market, _ = parties
    dataset = publish(health, "hospital-beds",
                      classification="CONFIDENTIAL" if hidden else "INTERNAL")
    error = refused(network, lambda: ask(market, dataset, fields=fields),
                    grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT",
                    "exchange.request.create")
    assert error.metadata["field"] == field
    assert says in error.message


def test_an_owner_fetching_its_own_dataset_is_told_where_it_is(network, tmp_path):
    health = network.agency("gd-health")
    beds = publish(health, "beds")
    for asked in (beds, f"{beds}/versions/1"):
        before = counts(network)
        with pytest.raises(errors.FailedPrecondition) as refused:
            health.fetch(asked, tmp_path / "beds.csv")
        assert refused.value.reason == "OWN_DATASET"
        assert "show" in str(refused.value) and "request access" not in str(refused.value)
        assert_only_refusal(network, before, "exchange.fetch", "OWN_DATASET")
    assert not (tmp_path / "beds.csv").exists()


@pytest.mark.parametrize("method, action", [("ListGrants", "exchange.grant.list"),
                                            ("ListAccessRequests", "exchange.request.list")])
@pytest.mark.parametrize("dataset", ["beds", "agencies/gd-health/datasets/Not A Name!!",
                                     "agencies/gd-health"])
def test_a_malformed_dataset_filter_is_refused(network, method, action, dataset):
    health = network.agency("gd-health")
    publish(health, "beds")
    request = getattr(exchange_pb2, f"{method}Request")(
        parent=health.name, direction=exchange_pb2.DIRECTION_INCOMING, dataset=dataset)
    before = counts(network)
    with pytest.raises(errors.InvalidArgument) as caught:
        health._call(getattr(health.exchange, method), request)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.metadata["field"] == "dataset"
    assert "agencies/{agency}/datasets/{dataset}" in caught.value.message
    assert_only_refusal(network, before, action, "INVALID_ARGUMENT")
