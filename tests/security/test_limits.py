"""Resource limits: message size, concurrent streams and request rate per agency, upload size,
deadlines. Each refusal is RESOURCE_EXHAUSTED with its reason, audited, and touches nothing else.
"""

from __future__ import annotations

import hashlib
import os
import time

import grpc
import pytest

from agencies import errors as sdk_errors
from agencies.client import AgencyClient
from gateway.v1 import catalog_pb2, directory_pb2, exchange_pb2
from govshare import envelopes
from tests.support.exchange import (
    ask,
    assert_only_refusal,
    counts,
    last_leaf,
    publish,
    wait_for,
)

MiB = 1024 * 1024
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def reason_of(error: grpc.RpcError) -> str:
    return sdk_errors.from_rpc_error(error).reason


def no_uploads_left(network) -> bool:
    return not any(network.gateway.blobs.tmp.iterdir())


def sealed_manifest(client: AgencyClient, dataset: str, content: bytes):
    manifest = catalog_pb2.Manifest(
        dataset=client.dataset_name(dataset), version=1, title=dataset,
        media_type=catalog_pb2.MEDIA_TYPE_OCTET_STREAM,
        classification=catalog_pb2.CLASSIFICATION_INTERNAL,
        sharing_type=catalog_pb2.SHARING_TYPE_UNCONDITIONAL,
        update_cycle=catalog_pb2.UPDATE_CYCLE_IRREGULAR,
        content_sha256=hashlib.sha256(content).digest(), content_size=len(content))
    manifest.create_time.GetCurrentTime()
    return envelopes.seal(client.signing_key, envelopes.MANIFEST, manifest)


# -- message size ---------------------------------------------------------------------------------


def test_a_request_over_the_message_limit_is_resource_exhausted(network):
    market = network.agency("sz-market")
    limit = network.gateway.config.limits.max_message_bytes
    before = counts(network)

    with pytest.raises(grpc.RpcError) as caught:
        market.catalog.GetDataset(catalog_pb2.GetDatasetRequest(name="x" * limit), timeout=10)

    assert caught.value.code() == EXHAUSTED
    assert counts(network) == before  # gRPC refused it before any gateway code ran
    assert market.agency("gd-health").name == "agencies/gd-health"


def test_a_chunk_over_the_message_limit_leaves_no_upload(network):
    health = network.agency("gd-health")
    content = os.urandom(2 * MiB)
    before = counts(network)

    with pytest.raises(sdk_errors.ResourceExhausted):
        health.upload(sealed_manifest(health, "big", content), [content], len(content))

    assert wait_for(lambda: no_uploads_left(network))
    after = counts(network)
    assert {k: v for k, v in after.items() if k != "audit_leaves"} == \
        {k: v for k, v in before.items() if k != "audit_leaves"}


# -- upload size ----------------------------------------------------------------------------------


def test_a_manifest_declaring_more_than_the_limit_is_refused_before_any_byte(network_factory):
    network = network_factory(limits={"max_dataset_bytes": 1000})
    health = network.agency("gd-health")
    before = counts(network)

    with pytest.raises(sdk_errors.ResourceExhausted) as caught:
        health.upload(sealed_manifest(health, "big", b"x" * 1001), [], 1001)

    # No chunk was sent: a limit checked after reading would have said DATA_LOSS (too short).
    assert caught.value.reason == "DATASET_TOO_LARGE"
    assert caught.value.metadata["limit"] == "1000"
    assert_only_refusal(network, before, "catalog.publish", "DATASET_TOO_LARGE")
    assert no_uploads_left(network)


def test_streaming_past_the_declared_size_is_refused_and_leaves_nothing(network_factory):
    # The gateway stops writing at the declared size, which is at most max_dataset_bytes: a
    # stream longer than its manifest says is a broken promise (INVALID_ARGUMENT), and no upload
    # ever grows past the limit.
    network = network_factory(limits={"max_dataset_bytes": 1000})
    health = network.agency("gd-health")
    declared = b"y" * 1000
    before = counts(network)

    with pytest.raises(sdk_errors.InvalidArgument) as caught:
        health.upload(sealed_manifest(health, "big", declared), [b"y" * 100] * 50, len(declared))

    assert caught.value.reason == "CONTENT_SIZE_MISMATCH"
    assert_only_refusal(network, before, "catalog.publish", "CONTENT_SIZE_MISMATCH")
    assert wait_for(lambda: no_uploads_left(network))


# -- concurrent streams ---------------------------------------------------------------------------


def open_watch(client: AgencyClient, timeout: float = 30.0):
    """A WatchEvents stream from the first event on, once it has delivered that event (so the
    gateway holds its stream slot)."""
    stream = client.exchange.WatchEvents(
        exchange_pb2.WatchEventsRequest(parent=client.name, cursor="0"), timeout=timeout)
    next(stream)
    return stream


def admitted(client: AgencyClient) -> bool:
    try:
        open_watch(client).cancel()
    except grpc.RpcError as error:
        assert error.code() == EXHAUSTED
        return False
    return True


def test_concurrent_streams_per_agency_are_limited(network_factory):
    network = network_factory(limits={"max_streams_per_agency": 2})
    health, market = network.agency("gd-health"), network.agency("sz-market")
    publish(health, "beds")
    publish(market, "prices")
    held = [open_watch(market), open_watch(market)]
    before = counts(network)

    with pytest.raises(grpc.RpcError) as caught:
        open_watch(market)

    assert caught.value.code() == EXHAUSTED
    assert reason_of(caught.value) == "TOO_MANY_STREAMS"
    assert_only_refusal(network, before, "exchange.watch", "TOO_MANY_STREAMS")
    assert "urn:govshare:agency:sz-market" in last_leaf(network)["actor"]
    other = open_watch(health)  # another agency has its own slots
    held[0].cancel()
    assert wait_for(lambda: admitted(market))
    for stream in (held[1], other):
        stream.cancel()


def test_a_watch_with_a_deadline_ends_by_itself_and_frees_its_slot(network_factory):
    network = network_factory(limits={"max_streams_per_agency": 1})
    market = network.agency("sz-market")
    publish(market, "prices")
    stream = open_watch(market, timeout=0.5)

    with pytest.raises(grpc.RpcError) as caught:
        list(stream)

    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_for(lambda: admitted(market))


# -- request rate ---------------------------------------------------------------------------------


def test_request_rate_per_agency_is_limited(network_factory):
    # A refill slow enough that no token comes back during the test: no timing dependence.
    # Each SDK client's first call reads the network configuration too: the administrator's
    # three registrations and its last read take 8 of its tokens.
    network = network_factory(limits={"requests_per_second": 0.01, "burst": 8})
    health, market = network.agency("gd-health"), network.agency("sz-market")
    request = directory_pb2.GetAgencyRequest(name="agencies/gd-health")
    for _ in range(8):
        market.directory.GetAgency(request, timeout=10)
    before = counts(network)

    with pytest.raises(grpc.RpcError) as caught:
        market.directory.GetAgency(request, timeout=10)

    assert caught.value.code() == EXHAUSTED
    assert reason_of(caught.value) == "RATE_LIMITED"
    assert "slow down" in caught.value.details()
    assert_only_refusal(network, before, "directory.get", "RATE_LIMITED")
    assert health.agency("sz-market").name == "agencies/sz-market"  # other agencies unaffected
    assert network.admin().agency("sz-market").name == "agencies/sz-market"


# -- deadlines ------------------------------------------------------------------------------------


def test_a_fetch_past_its_deadline_breaks_the_exchange(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    # more than gRPC buffers in flight
    beds = publish(health, "beds", os.urandom(24 * MiB), media_type="OCTET_STREAM")
    ask(market, beds)
    responses = market.exchange.FetchDataset(exchange_pb2.FetchDatasetRequest(dataset=beds),
                                             timeout=1.0)
    exchange = next(responses).start.exchange
    time.sleep(1.5)  # a reader too slow for its own deadline

    with pytest.raises(grpc.RpcError) as caught:
        for _ in responses:
            pass

    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    conn = network.gateway.db.reader()
    assert wait_for(lambda: conn.execute("SELECT state FROM exchanges WHERE name = ?",
                                         (exchange,)).fetchone()[0] == "BROKEN")
    breaks = conn.execute("SELECT outcome FROM audit_leaves WHERE action = 'exchange.fetch.break'"
                          " AND CAST(record AS TEXT) LIKE ?", (f"%{exchange}%",)).fetchall()
    assert breaks == [("ALLOWED",)]
