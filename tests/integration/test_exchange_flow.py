"""The whole exchange across three agencies in two regions: request, decide, fetch, revoke."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, time, timedelta
from itertools import islice

import grpc
import pytest

from agencies import errors
from gateway.v1 import exchange_pb2
from govshare import envelopes
from govshare.signing import VerifyKey
from tests.support.exchange import (
    ask,
    counts,
    last_leaf,
    publish,
    start_clocked_network,
)

PENDING = exchange_pb2.ACCESS_REQUEST_STATE_PENDING
APPROVED = exchange_pb2.ACCESS_REQUEST_STATE_APPROVED
DENIED = exchange_pb2.ACCESS_REQUEST_STATE_DENIED


def audit_actions(network) -> list[str]:
    conn = network.gateway.db.reader()
    return [row[0] for row in conn.execute(
        "SELECT action FROM audit_leaves WHERE action LIKE 'exchange.%' ORDER BY leaf_index")]


def test_unconditional_is_granted_at_once_and_fetched(network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    content = b"region,beds\n440100,5321\n" * 1000
    dataset = publish(health, "hospital-beds", content, classification="PUBLIC")

    created = ask(market, dataset, duration=timedelta(days=30))

    request, grant = created.access_request, created.grant
    assert request.state == APPROVED and request.grant == grant.name
    assert request.requester == "agencies/sz-market" and request.owner == "agencies/gd-health"
    assert "granted at once" in request.state_reason
    assert grant.state == exchange_pb2.GRANT_STATE_ACTIVE
    signed = exchange_pb2.GrantStatement.FromString(grant.signed_statement.payload)
    assert signed.grant == grant.name and signed.basis == \
        exchange_pb2.GRANT_BASIS_UNCONDITIONAL_SHARING
    assert (signed.expire_time.ToDatetime() - signed.create_time.ToDatetime()).days == 30
    gateway_key = VerifyKey.from_certificate(network.gateway.signing_certificate_pem)
    assert grant.signed_statement.signatures[0].key_id == gateway_key.key_id

    fetched = market.fetch(dataset, tmp_path / "beds.csv")

    assert (tmp_path / "beds.csv").read_bytes() == content
    assert fetched.receipt.requester == "agencies/sz-market"
    assert fetched.receipt.dataset_version == f"{dataset}/versions/1"
    assert fetched.receipt.content_size == len(content)
    conn = network.gateway.db.reader()
    leaf = conn.execute("SELECT action, record FROM audit_leaves WHERE leaf_index = ?",
                        (fetched.receipt.audit_leaf_index,)).fetchone()
    assert leaf[0] == "exchange.fetch.complete"
    assert fetched.receipt.exchange in json.loads(leaf[1])["resources"]
    assert audit_actions(network) == ["exchange.request.create", "exchange.grant.create",
                                      "exchange.fetch.start", "exchange.fetch.complete"]


def test_owners_list_who_fetched_their_data(network, tmp_path):
    health, market, stats = (network.agency(a) for a in ("gd-health", "sz-market", "zj-stats"))
    beds = publish(health, "hospital-beds", b"region,beds\n1,2\n")
    visits = publish(stats, "visits", b"region,visits\n1,2\n")
    ask(market, beds, duration=timedelta(days=30))
    ask(health, visits, duration=timedelta(days=30))
    by_market = market.fetch(beds, tmp_path / "beds.csv")
    health.fetch(visits, tmp_path / "visits.csv")  # the owner fetching too: not its data

    found = list(health.fetches())

    assert [(f.requester, f.dataset_version, f.exchange) for f in found] == [
        ("agencies/sz-market", f"{beds}/versions/1", by_market.receipt.exchange)]
    assert found[0].audit_event.leaf_index == by_market.receipt.audit_leaf_index
    health.prove_inclusion(found[0].audit_event.leaf_index)
    assert [f.exchange for f in health.fetches("hospital-beds")] == [by_market.receipt.exchange]
    assert [f.requester for f in stats.fetches()] == ["agencies/gd-health"]
    assert list(market.fetches()) == []
    assert list(stats.fetches(beds)) == []  # another agency's dataset: nothing to see


def test_conditional_waits_for_the_owner_who_approves_narrower(network):
    health, market, stats = (network.agency(a) for a in ("gd-health", "sz-market", "zj-stats"))
    dataset = publish(health, "clinic-visits", sharing_type="CONDITIONAL")

    pending = ask(stats, dataset, duration=timedelta(days=60), fields=["region", "beds"])
    request = pending.access_request
    assert request.state == PENDING and not pending.HasField("grant")
    assert request.HasField("decide_deadline") and not request.overdue
    assert "10 working days" in request.state_reason

    incoming = list(health.access_requests("INCOMING"))
    assert [r.name for r in incoming] == [request.name]
    assert list(market.access_requests("INCOMING")) == []
    assert [r.name for r in stats.access_requests("OUTGOING", state="PENDING")] == [request.name]

    approved = health.approve(request.name, duration=timedelta(days=10), fields=["region"],
                              reason="for the 2024 report only")

    assert approved.access_request.state == APPROVED
    assert approved.access_request.signed_decision.payload
    assert list(approved.grant.fields) == ["region"]
    assert approved.grant.expire_time.ToDatetime() - approved.grant.create_time.ToDatetime() \
        == timedelta(days=10)
    assert [g.name for g in stats.grants()] == [approved.grant.name]
    assert [g.name for g in health.grants("INCOMING")] == [approved.grant.name]
    assert stats.access_request(request.name).state == APPROVED
    assert health.access_request(request.name).grant == approved.grant.name

    revoked = health.revoke(approved.grant.name, "report published")
    assert revoked.state == exchange_pb2.GRANT_STATE_REVOKED
    assert revoked.revoke_reason == "report published"
    assert [g.name for g in stats.grants(state="REVOKED")] == [approved.grant.name]


def test_owner_denies_with_reason(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "patient-records", sharing_type="CONDITIONAL")
    request = ask(market, dataset).access_request

    denied = health.deny(request.name, "personal data: no legal basis for market regulation")

    assert denied.state == DENIED
    assert denied.state_reason == "personal data: no legal basis for market regulation"
    assert [r.name for r in market.access_requests(state="DENIED")] == [request.name]
    assert list(market.grants()) == []


def test_retry_with_the_same_request_id_returns_the_same_request(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "hospital-beds")
    statement = market.access_request_statement(
        dataset, purpose="PUBLIC_SERVICE", purpose_text="licensing", legal_basis="law")
    envelope = envelopes.seal(market.signing_key, envelopes.ACCESS_REQUEST, statement)

    first = market.send_access_request(envelope)
    before = counts(network)
    second = market.send_access_request(envelope)

    assert second.access_request.name == first.access_request.name
    assert second.grant.name == first.grant.name
    assert counts(network) == before


def test_validate_only_answers_and_writes_nothing(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    shared = publish(health, "hospital-beds")
    conditional = publish(health, "clinic-visits", sharing_type="CONDITIONAL")
    before = counts(network)

    now = ask(market, shared, validate_only=True, duration=timedelta(days=900))
    wait = ask(market, conditional, validate_only=True)

    assert now.access_request.state == APPROVED and not now.access_request.name
    assert "capped at 365 days" in now.access_request.state_reason
    assert wait.access_request.state == PENDING
    assert counts(network) == before


def test_retry_returns_the_request_even_after_the_dataset_was_withdrawn(network):
    """A retry is answered from the first request, before the sharing rules are consulted."""
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "clinic-hours")
    statement = market.access_request_statement(
        dataset, purpose="PUBLIC_SERVICE", purpose_text="opening hours for the citizen app",
        legal_basis="State Council order 716")
    envelope = envelopes.seal(market.signing_key, envelopes.ACCESS_REQUEST, statement)
    first = market.send_access_request(envelope)
    health.withdraw(dataset, "replaced by clinic-hours-2")
    again = market.send_access_request(envelope)
    assert again.access_request.name == first.access_request.name
    assert again.grant.name == first.grant.name


@pytest.fixture
def clocked(tmp_path):
    """A network and the clock its gateway reads, which the test moves forward."""
    network, clock = start_clocked_network(tmp_path / "net")
    try:
        yield network, clock
    finally:
        network.close()


def test_sdk_retry_with_the_same_request_id_returns_the_same_request(network):
    """The SDK signs a fresh nonce and create_time on every call: the content decides."""
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "hospital-beds")
    first = ask(market, dataset, request_id="9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d")
    before = counts(network)

    again = ask(market, dataset, request_id="9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d")

    assert again.access_request.name == first.access_request.name
    assert again.grant.name == first.grant.name
    assert counts(network) == before


def test_retry_after_the_skew_window_returns_the_same_request(clocked):
    network, clock = clocked
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "hospital-beds")
    statement = market.access_request_statement(dataset, purpose="STATISTICS",
                                                purpose_text="t", legal_basis="l")
    envelope = envelopes.seal(market.signing_key, envelopes.ACCESS_REQUEST, statement)
    first = market.send_access_request(envelope)
    clock.offset = timedelta(minutes=6)
    before = counts(network)

    again = market.send_access_request(envelope)

    assert again.access_request.name == first.access_request.name
    assert counts(network) == before
    with pytest.raises(errors.GovshareError) as caught:  # a new request is still checked
        ask(market, dataset)
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                        "CLOCK_SKEW")


def test_validate_only_answers_a_retry_with_the_existing_request(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "clinic-visits", sharing_type="CONDITIONAL")
    first = ask(market, dataset, request_id="rid-dry").access_request
    before = counts(network)

    dry = ask(market, dataset, request_id="rid-dry", validate_only=True).access_request

    assert dry.name == first.name and dry.state == PENDING
    assert counts(network) == before


def test_concurrent_identical_retries_make_one_request(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "clinic-visits", sharing_type="CONDITIONAL")
    statement = market.access_request_statement(dataset, purpose="STATISTICS", purpose_text="t",
                                                legal_basis="l", request_id="race-1")
    envelope = envelopes.seal(market.signing_key, envelopes.ACCESS_REQUEST, statement)
    names: list[str] = []

    def send() -> None:
        names.append(market.send_access_request(envelope).access_request.name)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(names) == 8 and len(set(names)) == 1
    conn = network.gateway.db.reader()
    assert conn.execute("SELECT COUNT(*) FROM access_requests").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM audit_leaves WHERE action ="
                        " 'exchange.request.create'").fetchone()[0] == 1


def test_approval_caps_the_duration_by_the_configuration(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "clinic-visits", sharing_type="CONDITIONAL")
    request = ask(market, dataset, duration=timedelta(days=900)).access_request

    grant = health.approve(request.name).grant

    assert (grant.expire_time.ToDatetime() - grant.create_time.ToDatetime()).days == 365


@pytest.mark.parametrize("sharing_type, hidden", [("CONDITIONAL", "on conditions"),
                                                  ("UNCONDITIONAL", "unconditionally")])
def test_a_hidden_dataset_asked_for_by_name_keeps_its_sharing_type_hidden(network, sharing_type,
                                                                          hidden):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "case-files", classification="CONFIDENTIAL",
                      sharing_type=sharing_type)

    request = ask(market, dataset).access_request

    assert dataset in request.state_reason and hidden not in request.state_reason
    visible = publish(health, "beds", sharing_type=sharing_type)
    assert hidden in ask(market, visible).access_request.state_reason


def test_expired_and_overdue_follow_the_gateway_clock(clocked):
    network, clock = clocked
    health, market = network.agency("gd-health"), network.agency("sz-market")
    granted = ask(market, publish(health, "beds"), duration=timedelta(days=1))
    pending = ask(market, publish(health, "visits", sharing_type="CONDITIONAL")).access_request
    assert list(market.grants(state="EXPIRED")) == []
    assert list(health.access_requests("INCOMING", overdue_only=True)) == []

    clock.offset = timedelta(days=2)

    assert [g.name for g in market.grants(state="EXPIRED")] == [granted.grant.name]
    assert [g.name for g in market.grants(state="ACTIVE")] == []
    assert [r.name for r in market.access_requests(state="EXPIRED")] == \
        [granted.access_request.name]
    assert list(health.access_requests("INCOMING", overdue_only=True)) == []

    clock.offset = timedelta(days=30)

    overdue = list(health.access_requests("INCOMING", overdue_only=True))
    assert [(r.name, r.overdue) for r in overdue] == [(pending.name, True)]
    assert market.access_request(pending.name).overdue


def test_overdue_requests_still_wait_for_the_owner_so_a_new_one_is_refused(clocked):
    network, clock = clocked
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "visits", sharing_type="CONDITIONAL")
    pending = ask(market, dataset).access_request
    clock.offset = timedelta(days=30)
    assert market.access_request(pending.name).overdue
    statement = market.access_request_statement(dataset, purpose="STATISTICS", purpose_text="t",
                                                legal_basis="l")
    statement.create_time.FromDatetime(clock())
    envelope = envelopes.seal(market.signing_key, envelopes.ACCESS_REQUEST, statement)

    with pytest.raises(errors.GovshareError) as caught:
        market.send_access_request(envelope)

    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                        "REQUEST_ALREADY_PENDING")


BEIJING = timedelta(hours=8)


def test_a_configured_holiday_week_extends_the_owner_deadline(tmp_path):
    """A National Day-like week: the request comes on the Wednesday before seven days off, and
    the Saturday after them is worked."""
    today = (datetime.now(UTC) + BEIJING).date()
    eve = today + timedelta(days=(2 - today.weekday()) % 7 or 7)  # next Wednesday
    days_off = tuple(eve + timedelta(days=n) for n in range(1, 8))
    network, clock = start_clocked_network(tmp_path / "net", exchange={
        "holidays": days_off, "extra_working_days": (eve + timedelta(days=10),)})
    try:
        health, market = network.agency("gd-health"), network.agency("sz-market")
        dataset = publish(health, "visits", sharing_type="CONDITIONAL")
        clock.offset = datetime.combine(eve, time(10), UTC) - BEIJING - datetime.now(UTC)
        statement = market.access_request_statement(dataset, purpose="STATISTICS",
                                                    purpose_text="t", legal_basis="l")
        statement.create_time.FromDatetime(clock())
        market.send_access_request(
            envelopes.seal(market.signing_key, envelopes.ACCESS_REQUEST, statement))

        [request] = health.access_requests("INCOMING")
        # Days 8, 9, 10 (the worked Saturday), 12 to 16, 19 and 20 after the eve: until the end
        # of day 20 in Beijing, where without the holidays it would be the end of day 14.
        end = datetime.combine(eve + timedelta(days=21), time(), UTC) - BEIJING
        assert request.decide_deadline.ToDatetime(tzinfo=UTC) == end
        clock.offset += timedelta(days=15)
        assert list(health.access_requests("INCOMING", overdue_only=True)) == []
        clock.offset += timedelta(days=6)
        assert [r.name for r in health.access_requests("INCOMING", overdue_only=True)] == \
            [request.name]
    finally:
        network.close()


WITHDRAWN = exchange_pb2.ACCESS_REQUEST_STATE_WITHDRAWN


def test_a_requester_withdraws_its_pending_request_tells_the_owner_and_asks_again(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "visits", sharing_type="CONDITIONAL")
    first = ask(market, dataset).access_request
    before = counts(network)

    withdrawn = market.withdraw_request(first.name, "asked for the wrong quarter")

    assert withdrawn.state == WITHDRAWN and not withdrawn.overdue
    assert withdrawn.state_reason == "withdrawn by its requester: asked for the wrong quarter"
    assert withdrawn.decide_time.seconds and not withdrawn.signed_decision.payload
    assert withdrawn.signed_statement == first.signed_statement  # what was signed stays
    after = counts(network)
    assert after["access_requests"] == before["access_requests"]
    assert (after["events"], after["audit_leaves"]) == (before["events"] + 1,
                                                        before["audit_leaves"] + 1)
    leaf = last_leaf(network)
    assert (leaf["actor"], leaf["action"], leaf["outcome"]) == (
        "urn:govshare:agency:sz-market", "exchange.request.withdraw", "ALLOWED")
    assert first.name in leaf["record"] and "asked for the wrong quarter" in leaf["record"]
    assert health.access_request(first.name).state == WITHDRAWN

    again = ask(market, dataset).access_request

    assert again.state == PENDING and again.name != first.name
    stream = health.watch(cursor="0")
    told = list(islice(stream, 4))
    stream.close()
    assert [exchange_pb2.EventType.Name(e.type) for e in told] == [
        "EVENT_TYPE_DATASET_VERSION_PUBLISHED", "EVENT_TYPE_ACCESS_REQUEST_CREATED",
        "EVENT_TYPE_ACCESS_REQUEST_WITHDRAWN_BY_REQUESTER", "EVENT_TYPE_ACCESS_REQUEST_CREATED"]
    assert (told[2].resource, told[2].dataset, told[2].actor) == (
        first.name, dataset, "urn:govshare:agency:sz-market")
    assert "asked for the wrong quarter" in told[2].summary
    assert [(r.name, r.state) for r in health.access_requests("INCOMING")] == [
        (again.name, PENDING), (first.name, WITHDRAWN)]
    assert [r.name for r in market.access_requests(state="WITHDRAWN")] == [first.name]


def test_an_overdue_request_withdrawn_no_longer_locks_the_requester_out(clocked):
    network, clock = clocked
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "visits", sharing_type="CONDITIONAL")
    pending = ask(market, dataset).access_request
    clock.offset = timedelta(days=30)
    assert [r.name for r in health.access_requests("INCOMING", overdue_only=True)] == \
        [pending.name]

    withdrawn = market.withdraw_request(pending.name, "the owner never answered")

    assert withdrawn.state == WITHDRAWN and not withdrawn.overdue
    assert list(health.access_requests("INCOMING", overdue_only=True)) == []
    statement = market.access_request_statement(dataset, purpose="STATISTICS", purpose_text="t",
                                                legal_basis="l")
    statement.create_time.FromDatetime(clock())
    again = market.send_access_request(
        envelopes.seal(market.signing_key, envelopes.ACCESS_REQUEST, statement))
    assert again.access_request.state == PENDING and not again.access_request.overdue


LONG_PURPOSE = ("为编制全省医疗卫生资源统计年报核对床位数据" * 50)[:1000]  # 3000 bytes in UTF-8


def _list_every_page(client, method, request, field) -> tuple[list[str], int]:
    """The names listed page by page with page_size=1000, and the number of pages."""
    request.page_size = 1000
    names, pages = [], 0
    while True:
        response = client._call(method, request)
        pages += 1
        names += [item.name for item in getattr(response, field)]
        if not response.next_page_token:
            return names, pages
        request.page_token = response.next_page_token


def test_access_requests_are_listed_in_pages_that_fit_the_message_limit(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "beds")  # granted at once: a request again is a renewal
    made = [ask(market, dataset, purpose_text=LONG_PURPOSE, legal_basis=LONG_PURPOSE[:500])
            .access_request.name for _ in range(150)]  # ~9 KiB each: over 1.06 MiB in all

    for client, direction in ((market, exchange_pb2.DIRECTION_OUTGOING),
                              (health, exchange_pb2.DIRECTION_INCOMING)):
        request = exchange_pb2.ListAccessRequestsRequest(parent=client.name, direction=direction)
        names, pages = _list_every_page(client, client.exchange.ListAccessRequests, request,
                                        "access_requests")
        assert names == made[::-1] and pages > 1


def test_grants_are_listed_in_pages_that_fit_the_message_limit(network_factory):
    network = network_factory(limits={"max_chunk_bytes": 16 * 1024,
                                      "max_message_bytes": 80 * 1024})
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "beds")
    made = [ask(market, dataset).grant.name for _ in range(150)]  # over 80 KiB in all

    request = exchange_pb2.ListGrantsRequest(parent=market.name,
                                             direction=exchange_pb2.DIRECTION_OUTGOING)
    names, pages = _list_every_page(market, market.exchange.ListGrants, request, "grants")
    assert names == made[::-1] and pages > 1
