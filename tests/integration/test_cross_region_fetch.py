"""Fetch across the network: an agency fetches another region's dataset from its own gateway,
which relays the owner's gateway's stream, checking the content on the way; the SDK verifies
it end to end, the receipt naming both gateways; it resumes across a restart of the relay, and
every cut that stops a local fetch stops a relayed one."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import grpc
import pytest

from agencies.errors import PermissionDenied, Unauthenticated, Unavailable
from certs.ca import CertificateAuthority
from gateway.context import Call
from gateway.identity import Caller
from gateway.v1 import exchange_pb2
from govshare import envelopes, errors, times
from tests.support.domain import LocalTransport
from tests.support.exchange import ask, publish
from tests.support.federation import two_regions

GD, BJ = "gd-gateway", "bj-gateway"
BIG = 12 * 1024 * 1024
"""Large enough that the owner's gateway is still streaming when the first chunk arrives."""
TABLE = b"region,beds,doctors\n110101,120,30\n110102,80,12\n"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """gd-health at gd holds grants on bj-stats's datasets at bj: a small table, a large file
    and a table it may have two fields of."""
    regions = two_regions(tmp_path_factory.mktemp("cross-region-fetch"))
    bj, gd = regions.clients["bj-stats"], regions.clients["gd-health"]
    publish(bj, "table", TABLE, sharing_type="UNCONDITIONAL")
    publish(bj, "big", os.urandom(BIG), media_type="OCTET_STREAM", schema=[],
            sharing_type="UNCONDITIONAL")
    publish(bj, "columns", TABLE, sharing_type="UNCONDITIONAL")
    regions.members.pull()
    for dataset_id in ("table", "big"):
        ask(gd, f"agencies/bj-stats/datasets/{dataset_id}")
    ask(gd, "agencies/bj-stats/datasets/columns", fields=["region", "beds"])
    yield regions
    regions.close()


def _exchange_state(regions, gateway_id: str, exchange: str) -> str:
    row = regions.members.gateway(gateway_id).db.reader().execute(
        "SELECT state FROM exchanges WHERE name = ?", (exchange,)).fetchone()
    return row[0] if row else ""


class Interrupt:
    """A progress callback that does `act` once, after the first chunk written."""

    def __init__(self, act):
        self.act = act
        self.done = False

    def __call__(self, written: int, total: int) -> None:
        if not self.done:
            self.done = True
            self.act()


def test_a_fetch_through_the_requesters_gateway_is_verified_with_its_carriers(net, tmp_path):
    gd = net.clients["gd-health"]
    fetched = gd.fetch("agencies/bj-stats/datasets/table", tmp_path / "table.csv")
    assert fetched.path.read_bytes() == TABLE
    assert list(fetched.receipt.carriers) == [BJ, GD]
    envelopes.check_sealed(fetched.signed_receipt,
                           net.members.gateway(BJ).signing_key.verifier(), envelopes.RECEIPT)

    exchange, receipt_id = fetched.receipt.exchange, envelopes.envelope_id(fetched.signed_receipt)
    completed = [r for r in net.members.records(BJ, "exchange.fetch.complete")
                 if r["resources"][0] == exchange]
    assert [(r["actor"], r["via"], r["envelopes"]) for r in completed] == [
        ("urn:govshare:agency:gd-health", "urn:govshare:gateway:gd-gateway", [receipt_id])]
    relayed = [r for r in net.members.records(GD, "exchange.fetch.relay.complete")
               if r["resources"][0] == exchange]
    assert [(r["actor"], r["envelopes"]) for r in relayed] == [
        ("urn:govshare:agency:gd-health", [receipt_id])]
    assert "SHA-256 and size checked" in relayed[0]["reason"]
    assert [r["resources"][0] for r in net.members.records(GD, "exchange.fetch.relay.start")
            ].count(exchange) == 1


def test_a_projection_crosses_regions(net, tmp_path):
    gd = net.clients["gd-health"]
    fetched = gd.fetch("agencies/bj-stats/datasets/columns", tmp_path / "columns.csv")
    assert fetched.fields == ["region", "beds"]
    assert fetched.path.read_bytes() == b"region,beds\r\n110101,120\r\n110102,80\r\n"
    assert list(fetched.receipt.carriers) == [BJ, GD]


def test_a_fetch_resumes_through_the_requesters_gateway_after_it_restarts(net, tmp_path):
    gd = net.clients["gd-health"]
    target = tmp_path / "big.bin"
    stop = Interrupt(lambda: net.members.stop(GD))
    with pytest.raises((Unavailable, grpc.RpcError)):
        gd.fetch("agencies/bj-stats/datasets/big", target, progress=stop)
    kept = target.with_name("big.bin.part")
    assert 0 < kept.stat().st_size < BIG
    net.members.start(GD)

    fetched = gd.fetch("agencies/bj-stats/datasets/big", target)
    assert fetched.path.stat().st_size == BIG
    assert list(fetched.receipt.carriers) == [BJ, GD]
    resumed = [r for r in net.members.records(GD, "exchange.fetch.relay.complete")
               if r["resources"][0] == fetched.receipt.exchange]
    assert "size checked (resumed at" in resumed[0]["reason"]


def test_a_revocation_at_the_owners_gateway_cuts_a_running_relayed_fetch(net, tmp_path):
    gd, bj = net.clients["gd-health"], net.clients["bj-stats"]
    grant = next(g for g in gd.grants(state="ACTIVE")
                 if g.dataset == "agencies/bj-stats/datasets/big")
    revoke = Interrupt(lambda: bj.revoke(grant.name, "under review"))
    with pytest.raises(PermissionDenied) as cut:
        gd.fetch("agencies/bj-stats/datasets/big", tmp_path / "cut.bin", progress=revoke)
    assert cut.value.reason == "GRANT_REVOKED"
    assert BJ in cut.value.message
    exchange = (tmp_path / "cut.bin.part.exchange").read_text().split()[0]
    assert _exchange_state(net, BJ, exchange) == "BROKEN"
    broken = [r for r in net.members.records(GD, "exchange.fetch.relay.break")
              if r["resources"][0] == exchange]
    assert [(r["outcome"], "GRANT_REVOKED" in r["reason"]) for r in broken] == [
        ("REFUSED", True)]
    with pytest.raises(PermissionDenied) as refused:
        gd.fetch("agencies/bj-stats/datasets/big", tmp_path / "again.bin")
    assert refused.value.reason == "NO_ACTIVE_GRANT"
    ask(gd, "agencies/bj-stats/datasets/big", request_id="after-revocation")


def test_the_requester_suspended_at_its_own_gateway_is_cut(net, tmp_path):
    gd, admin = net.clients["gd-health"], net.admins[GD]
    suspend = Interrupt(lambda: admin.suspend_agency("agencies/gd-health", "inquiry"))
    try:
        with pytest.raises(PermissionDenied) as cut:
            gd.fetch("agencies/bj-stats/datasets/big", tmp_path / "cut.bin", progress=suspend)
        assert cut.value.reason == "AGENCY_SUSPENDED"
        exchange = (tmp_path / "cut.bin.part.exchange").read_text().split()[0]
        broken = [r for r in net.members.records(GD, "exchange.fetch.relay.break")
                  if r["resources"][0] == exchange]
        assert len(broken) == 1 and "AGENCY_SUSPENDED" in broken[0]["reason"]
        assert not (tmp_path / "cut.bin").exists()
        # Replicated to the owner's gateway, the suspension refuses it there too.
        net.members.pull()
        stub = net.members.peer_exchange(GD, BJ)
        with pytest.raises(grpc.RpcError) as there:
            list(stub.FetchDataset(exchange_pb2.FetchDatasetRequest(
                dataset="agencies/bj-stats/datasets/table"),
                metadata=(("govshare-on-behalf-of", "agencies/gd-health"),)))
        assert there.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        admin.reinstate_agency("agencies/gd-health", "cleared")
        net.members.pull()


def test_an_expired_grant_refuses_a_new_relayed_fetch(net, tmp_path):
    gd, bj = net.clients["gd-health"], net.clients["bj-stats"]
    publish(bj, "brief", TABLE, sharing_type="UNCONDITIONAL")
    net.members.pull()
    grant = ask(gd, "agencies/bj-stats/datasets/brief", duration=timedelta(seconds=1)).grant
    time.sleep(max(0.0, (times.from_timestamp(grant.expire_time)
                         - times.utcnow()).total_seconds()) + 0.1)
    with pytest.raises(PermissionDenied) as refused:
        gd.fetch("agencies/bj-stats/datasets/brief", tmp_path / "brief.csv")
    assert refused.value.reason == "NO_ACTIVE_GRANT"


def test_a_receipt_that_does_not_bind_what_was_relayed_breaks_the_relay(net, tmp_path):
    """The relay's check, fed a genuine stream of the owner's gateway (its real signed receipt)
    with one byte changed on the way."""
    gd = net.clients["gd-health"]
    stream = list(gd.exchange.FetchDataset(exchange_pb2.FetchDatasetRequest(
        dataset="agencies/bj-stats/datasets/table")))
    start, chunks, receipt = stream[0].start, [m.chunk for m in stream[1:-1]], stream[-1].receipt
    gateway = net.members.gateway(GD)
    call = Call(caller=Caller.agency("gd-health"), action="exchange.fetch",
                transport=LocalTransport(), time=times.utcnow())
    call.agency = gateway.directory.registered(call.caller)
    relay = gateway.relaying.open(call, BJ, 0)
    relay.started(start)
    for chunk in chunks:
        relay.chunk(chunk[:-1] + bytes([chunk[-1] ^ 1]))
    with pytest.raises(Exception) as mismatch:
        relay.completed(receipt)
    assert mismatch.value.reason == "RELAYED_CONTENT_MISMATCH"
    assert "delivered SHA-256" in mismatch.value.message
    assert isinstance(mismatch.value, errors.DataLoss)
    relay.broken(mismatch.value)
    broken = [r for r in net.members.records(GD, "exchange.fetch.relay.break")
              if r["resources"][0] == start.exchange]
    assert [(r["outcome"], "RELAYED_CONTENT_MISMATCH" in r["reason"]) for r in broken] == [
        ("REFUSED", True)]


def test_a_message_of_the_members_stream_that_does_not_parse_breaks_the_relay(net):
    gateway = net.members.gateway(GD)
    call = Call(caller=Caller.agency("gd-health"), action="exchange.fetch",
                transport=LocalTransport(), time=times.utcnow())
    relay = gateway.relaying.open(call, BJ, 0)
    with pytest.raises(errors.DataLoss) as mismatch:
        relay.parsed(b"\x0a\x05ab")  # a FetchStart whose length runs past the end
    assert mismatch.value.reason == "RELAYED_CONTENT_MISMATCH"
    assert "not a FetchDatasetResponse" in mismatch.value.message


def test_a_revoked_requester_certificate_cuts_a_running_relayed_fetch(net, tmp_path):
    """Last: gd-health's TLS certificate stays revoked."""
    gd = net.clients["gd-health"]
    ca = CertificateAuthority.open(net.members.federation.root / "ca")
    tls = next(row for row in ca.list()
               if row.identity == "urn:govshare:agency:gd-health" and row.purpose == "tls")
    revoke = Interrupt(lambda: ca.revoke(tls.serial, reason="keyCompromise"))
    with pytest.raises(Unauthenticated) as cut:
        gd.fetch("agencies/bj-stats/datasets/big", tmp_path / "cut.bin", progress=revoke)
    assert cut.value.reason == "CERTIFICATE_REVOKED"
