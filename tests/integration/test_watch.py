"""WatchEvents: what concerns an agency, in order, resumable from a cursor without gaps; a
deadline or a cancellation raises its own SDK error."""

from __future__ import annotations

import threading
from itertools import islice

import grpc
import pytest

from agencies import errors
from certs.identity import Identity
from gateway.context import Call
from gateway.identity import Caller
from gateway.v1 import exchange_pb2 as pb
from tests.support.exchange import ask, publish


def kinds(events) -> list[str]:
    return [pb.EventType.Name(event.type).removeprefix("EVENT_TYPE_") for event in events]


def test_watch_in_order_then_resume_live_from_a_cursor(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    visits = publish(health, "visits", sharing_type="CONDITIONAL")
    beds = publish(health, "beds")
    request = ask(market, visits).access_request
    grant = ask(market, beds).grant
    health.approve(request.name)
    publish(health, "beds", b"region,beds\n1,3\n")

    stream = market.watch(cursor="0")
    first = list(islice(stream, 2))
    stream.close()

    assert kinds(first) == ["ACCESS_REQUEST_APPROVED", "DATASET_VERSION_PUBLISHED"]
    assert first[0].resource == request.name and first[0].actor.endswith("gd-health")
    assert first[1].resource == f"{beds}/versions/2"
    resumed = market.watch(cursor=first[-1].cursor)
    health.revoke(grant.name, "report done")
    following = next(resumed)
    resumed.close()
    assert kinds([following]) == ["GRANT_REVOKED"]
    assert int(following.cursor) > int(first[-1].cursor)
    assert "report done" in following.summary


def test_a_requester_is_told_its_pending_request_closed_with_the_withdrawn_dataset(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    visits = publish(health, "visits", sharing_type="CONDITIONAL")
    request = ask(market, visits).access_request
    health.withdraw(visits, "merged into clinic-visits")

    stream = market.watch(cursor="0")
    told = next(stream)
    stream.close()

    assert kinds([told]) == ["ACCESS_REQUEST_WITHDRAWN"]
    assert (told.resource, told.dataset) == (request.name, visits)
    assert "merged into clinic-visits" in told.summary


def test_owner_sees_requests_and_its_own_publications(network):
    health, market, stats = (network.agency(a) for a in ("gd-health", "sz-market", "zj-stats"))
    visits = publish(health, "visits", sharing_type="CONDITIONAL")
    ask(market, visits)
    ask(stats, visits)

    stream = health.watch(cursor="0")
    seen = list(islice(stream, 3))
    stream.close()

    assert kinds(seen) == ["DATASET_VERSION_PUBLISHED", "ACCESS_REQUEST_CREATED",
                           "ACCESS_REQUEST_CREATED"]
    assert [int(e.cursor) for e in seen] == sorted(int(e.cursor) for e in seen)


def test_follow_a_dataset_without_a_grant(network):
    health, stats = network.agency("gd-health"), network.agency("zj-stats")
    beds = publish(health, "beds")
    other = publish(health, "other")
    publish(health, "other", b"v2")
    publish(health, "beds", b"v2")

    stream = stats.watch(cursor="0", follow=[beds])
    seen = list(islice(stream, 2))
    stream.close()

    assert [e.resource for e in seen] == [f"{beds}/versions/1", f"{beds}/versions/2"]
    assert other not in {e.dataset for e in seen}


@pytest.mark.parametrize("cursor", ["garbage", "-1", "99999999", "9" * 20, "1" * 5000])
def test_garbage_cursor_is_refused(network, cursor):
    market = network.agency("sz-market")
    with pytest.raises(errors.InvalidArgument) as refused:
        next(market.watch(cursor=cursor))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.reason == "INVALID_CURSOR"
    assert refused.value.metadata["field"] == "cursor"


def test_following_what_you_may_not_see_is_refused(network):
    health, stats = network.agency("gd-health"), network.agency("zj-stats")
    hidden = publish(health, "case-files", classification="CONFIDENTIAL",
                     sharing_type="CONDITIONAL")
    cases = [
        (hidden, errors.PermissionDenied, "DATASET_NOT_VISIBLE"),
        ("agencies/gd-health/datasets/no-such", errors.PermissionDenied, "DATASET_NOT_VISIBLE"),
        ("agencies/zj-stats/datasets/no-such", errors.NotFound, "DATASET_NOT_FOUND"),
        ("datasets/../x", errors.InvalidArgument, "INVALID_ARGUMENT"),
    ]
    for name, error, reason in cases:
        before = network.gateway.log.checkpoint().tree_size
        with pytest.raises(error) as refused:
            next(stats.watch(follow=[name]))
        assert refused.value.reason == reason
        assert network.gateway.log.checkpoint().tree_size == before + 1  # its refusal only


class EndedTransport:
    """A transport whose call ended before the watch began (the client went away)."""

    def add_callback(self, callback) -> bool:
        return False  # what grpc answers once the RPC has terminated


def test_a_watch_whose_call_already_ended_returns_at_once(network):
    # Otherwise it would poll every POLL_SECONDS, holding a server thread, until shutdown.
    call = Call(caller=Caller(Identity("agency", "sz-market"), 1), action="exchange.watch",
                transport=EndedTransport(), time=network.gateway.now())
    delivered: list = []
    watcher = threading.Thread(target=lambda: delivered.extend(
        network.gateway.events.watch(call, cursor="0", follow=[])), daemon=True)
    watcher.start()
    watcher.join(timeout=10)
    assert not watcher.is_alive() and delivered == []


def watching(network, client, follow=()):
    """A watch of `client` open at the gateway (its first event, the client's publication of
    a dataset of its own, has been read)."""
    last = network.gateway.db.reader().execute("SELECT MAX(seq) FROM events").fetchone()[0]
    own = publish(client, "watch-opened")
    stream = client.watch(cursor=str(last), follow=follow)
    assert next(stream).dataset == own
    return stream


def test_a_followed_confidential_dataset_stops_reporting_once_it_is_hidden(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    cases = publish(health, "case-files", classification="CONFIDENTIAL",
                    sharing_type="CONDITIONAL")
    beds = publish(health, "beds")
    grant = health.approve(ask(market, cases).access_request.name).grant
    stream = watching(network, market, follow=[cases, beds])

    health.revoke(grant.name, "misuse")
    publish(health, "case-files", b"secret,v2\n", classification="CONFIDENTIAL",
            sharing_type="CONDITIONAL")
    publish(health, "beds", b"region,beds\n1,3\n")
    seen = list(islice(stream, 2))
    stream.close()

    assert kinds(seen) == ["GRANT_REVOKED", "DATASET_VERSION_PUBLISHED"]
    assert seen[1].resource == f"{beds}/versions/2"  # not case-files v2


def test_a_followed_dataset_keeps_its_confidential_versions_hidden(network):
    """v1 PUBLIC, v2 CONFIDENTIAL, v3 PUBLIC: a follower without a grant hears of v1 and v3
    only, as ListDatasetVersions shows it, even reading them after v3 made the dataset PUBLIC."""
    health, market = network.agency("gd-health"), network.agency("sz-market")
    mixed = publish(health, "mixed", classification="PUBLIC")
    stream = watching(network, market, follow=[mixed])
    publish(health, "mixed", b"region,beds\n1,2\n", classification="CONFIDENTIAL")
    publish(health, "mixed", b"region,beds\n1,3\n", classification="PUBLIC")
    seen = list(islice(stream, 1))
    stream.close()

    assert [event.resource for event in seen] == [f"{mixed}/versions/3"]
    assert [v.version for v in market.versions(mixed)] == [3, 1]


def test_a_suspended_agency_s_watch_ends(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    beds = publish(health, "beds")
    ask(market, beds)
    stream = watching(network, market)
    leaves = network.gateway.log.checkpoint().tree_size

    network.admin().suspend_agency("sz-market", "certificate compromised")
    publish(health, "beds", b"region,beds\n1,3\n")

    with pytest.raises(errors.PermissionDenied) as refused:
        next(stream)
    assert refused.value.reason == "AGENCY_SUSPENDED"
    conn = network.gateway.db.reader()
    refusals = conn.execute("SELECT action FROM audit_leaves WHERE leaf_index >= ?"
                            " AND outcome = 'REFUSED'", (leaves,)).fetchall()
    assert refusals == [("exchange.watch",)]


def test_deadlines_and_cancellations_raise_their_own_types(network):
    health = network.agency("gd-health")
    # A watch with nothing to deliver runs until its deadline.
    responses = health.exchange.WatchEvents(
        pb.WatchEventsRequest(parent=health.name), timeout=0.3)
    with pytest.raises(errors.DeadlineExceeded) as caught:
        list(health._checked(responses))
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    responses = health.exchange.WatchEvents(pb.WatchEventsRequest(parent=health.name))
    responses.cancel()
    with pytest.raises(errors.Cancelled) as caught:
        list(health._checked(responses))
    assert caught.value.code == grpc.StatusCode.CANCELLED
