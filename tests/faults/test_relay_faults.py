"""A fetch relayed from an owner's gateway that hangs, ends its stream without a receipt, or
leaves the network: the reproductions of a review (named after each attack, test_xr_<attack>),
each now ending the relay with a precise status, its slots and threads freed and its break in
the requester's gateway's log.

bj-gateway holds the dataset and plays the misbehaving member: its FetchDataset stream, as
its operator could change it (`owner_stream`), pauses, hangs or ends early."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
import pytest

from agencies.errors import PermissionDenied, Unavailable, from_rpc_error
from gateway.v1 import exchange_pb2
from govshare.transparency import record
from tests.support.exchange import ask, publish, wait_for
from tests.support.federation import two_regions

GD, BJ = "gd-gateway", "bj-gateway"
GD_HEALTH = "urn:govshare:agency:gd-health"
TABLE = "agencies/bj-stats/datasets/table"
BIG = "agencies/bj-stats/datasets/big"


def _granted(regions):
    """bj-stats publishes a table and a large file, gd-health holds grants on both."""
    bj, gd = regions.clients["bj-stats"], regions.clients["gd-health"]
    publish(bj, "table", sharing_type="UNCONDITIONAL")
    publish(bj, "big", os.urandom(8 * 1024 * 1024), media_type="OCTET_STREAM", schema=[],
            sharing_type="UNCONDITIONAL")
    regions.members.pull()
    for dataset in (TABLE, BIG):
        ask(gd, dataset)
    return regions


@pytest.fixture(scope="module")
def impatient(tmp_path_factory):
    """Members that cut a relay after 1 s without a message from its owner's gateway."""
    regions = _granted(two_regions(tmp_path_factory.mktemp("impatient"),
                                   network={"relay_idle_seconds": 1.0}))
    yield regions
    regions.close()


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    """Members with the default relay_idle_seconds (30) and 2 stream slots per agency."""
    regions = _granted(two_regions(tmp_path_factory.mktemp("patient"),
                                   limits={"max_streams_per_agency": 2}))
    yield regions
    regions.close()


@contextmanager
def owner_stream(regions, change: Callable[[Iterator], Iterator]) -> Iterator[None]:
    """While in the block, bj's FetchDataset streams are `change(genuine stream)`."""
    fetcher = regions.members.gateway(BJ).fetch
    genuine = fetcher.serve

    def serve(call, dataset, offset, exchange):
        stream = genuine(call, dataset, offset, exchange)
        try:
            yield from change(stream)
        finally:
            stream.close()

    fetcher.serve = serve
    try:
        yield
    finally:
        del fetcher.serve


class Pause:
    """A change of bj's stream: its first `after` messages, then nothing until `go` is set
    (`paused` is set once it waits), then the rest."""

    def __init__(self, after: int):
        self.after = after
        self.paused = threading.Event()
        self.go = threading.Event()

    def __call__(self, stream: Iterator) -> Iterator:
        for index, message in enumerate(stream):
            if index == self.after:
                self.paused.set()
                self.go.wait(60)
            yield message


def _relay_events(regions, action: str) -> list[dict]:
    rows = regions.members.gateway(GD).db.reader().execute(
        "SELECT record FROM audit_leaves WHERE action = ? ORDER BY leaf_index",
        (action,)).fetchall()
    return [record.decode(row[0]) for row in rows]


@pytest.mark.parametrize("after", [0, 1], ids=["before-the-start", "after-the-start"])
def test_xr_slow_member_a_hung_owner_is_cut_after_relay_idle_seconds(impatient, tmp_path,
                                                                     after):
    pause = Pause(after)
    try:
        with owner_stream(impatient, pause), pytest.raises(Unavailable) as cut:
            impatient.clients["gd-health"].fetch(TABLE, tmp_path / "table.csv")
    finally:
        pause.go.set()
    assert (cut.value.reason, cut.value.metadata["member"]) == ("RELAY_IDLE", BJ)
    if after:
        broke = _relay_events(impatient, "exchange.fetch.relay.break")[-1]
        assert (broke["outcome"], broke["reason"].split(":")[0]) == (
            "REFUSED", f"from member {BJ}; RELAY_IDLE")
    limiter = impatient.members.gateway(GD).limiter
    assert limiter.streams(GD_HEALTH) == 0


def test_xr_slow_member_an_agency_going_away_frees_its_slots_and_threads(patient):
    """gd-health gives up on every stream slot it has, each waiting on a hung bj: its home
    gateway cancels bj's streams as each call ends, long before relay_idle_seconds, so the
    server threads return and its slots are free for anything else."""
    pause = Pause(0)
    gd = patient.clients["gd-health"]
    limiter = patient.members.gateway(GD).limiter
    try:
        with owner_stream(patient, pause):
            for _ in range(limiter.max_streams):
                with pytest.raises(grpc.RpcError) as gave_up:
                    list(gd.exchange.FetchDataset(
                        exchange_pb2.FetchDatasetRequest(dataset=TABLE), timeout=0.5))
                assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            wait_for(lambda: limiter.streams(GD_HEALTH) == 0)
    finally:
        pause.go.set()
    # bj's own threads were held by its operator's change until now.
    wait_for(lambda: patient.members.gateway(BJ).limiter.streams(GD_HEALTH) == 0)


def test_xr_slow_member_a_suspension_cuts_a_relay_waiting_on_its_owner(patient, tmp_path):
    """The cuts a relay checks as bytes pass (suspension, the CRL, the member's leaving) are
    checked while it waits too."""
    pause = Pause(1)
    admin = patient.admins[GD]

    started = len(_relay_events(patient, "exchange.fetch.relay.start"))

    def suspend() -> None:  # once gd relays the start, and bj then sends nothing
        pause.paused.wait(30)
        wait_for(lambda: len(_relay_events(patient, "exchange.fetch.relay.start")) > started)
        admin.suspend_agency("agencies/gd-health", "inquiry")

    suspender = threading.Thread(target=suspend)
    try:
        with owner_stream(patient, pause):
            suspender.start()
            with pytest.raises(PermissionDenied) as cut:
                patient.clients["gd-health"].fetch(TABLE, tmp_path / "table.csv")
        assert cut.value.reason == "AGENCY_SUSPENDED"
        broke = _relay_events(patient, "exchange.fetch.relay.break")[-1]
        assert "AGENCY_SUSPENDED" in broke["reason"]
    finally:
        pause.go.set()
        suspender.join()
        admin.reinstate_agency("agencies/gd-health", "cleared")


def _without_receipt(stream: Iterator) -> Iterator:
    for message in stream:
        if message.WhichOneof("part") == "receipt":
            return
        yield message


def _empty(stream: Iterator) -> Iterator:
    return iter(())


def _more_after_receipt(stream: Iterator) -> Iterator:
    for message in stream:
        yield message
        if message.WhichOneof("part") == "receipt":
            yield message


@pytest.mark.parametrize("change, audited", [(_without_receipt, "exchange.fetch.relay.break"),
                                             (_empty, "exchange.fetch"),
                                             (_more_after_receipt, "exchange.fetch")],
                         ids=["without-receipt", "empty", "more-after-the-receipt"])
def test_xr_hostile_member_a_stream_not_ending_with_its_receipt_is_data_loss(
        impatient, change, audited):
    """A relayed stream that ends without the receipt (or is empty, or goes on after it) was
    answered OK at the home gateway, its log recording no break: it is DATA_LOSS
    RELAY_NO_RECEIPT, audited as the relay's break (or, when the relay never started or had
    completed, as the call's refusal)."""
    gd = impatient.clients["gd-health"]
    with owner_stream(impatient, change):
        stream = gd.exchange.FetchDataset(exchange_pb2.FetchDatasetRequest(dataset=TABLE))
        with pytest.raises(grpc.RpcError) as ended:
            list(stream)
    assert ended.value.code() == grpc.StatusCode.DATA_LOSS
    assert from_rpc_error(ended.value).reason == "RELAY_NO_RECEIPT"
    last = _relay_events(impatient, audited)[-1]
    assert (last["actor"], last["outcome"]) == (GD_HEALTH, "REFUSED")
    assert "RELAY_NO_RECEIPT" in last["reason"]


@pytest.mark.parametrize("leaving, reason, error", [
    (GD, "PEER_NOT_IN_NETWORK", PermissionDenied),
    (BJ, "MEMBER_UNAVAILABLE", Unavailable),
], ids=["the-relay-leaves", "the-owner-leaves"])
def test_xr_removed_member_a_running_fetch_is_cut_when_its_peer_leaves(
        tmp_path, leaving, reason, error):
    """A configuration without gd, taken by bj mid-fetch, cuts bj's stream to gd (as its CRL
    would); one without bj, taken by gd, cuts gd's relay from bj."""
    regions = _granted(two_regions(tmp_path / "net"))
    staying = BJ if leaving == GD else GD
    pause = Pause(2)
    try:
        def leave(written: int, total: int) -> None:
            if not pause.go.is_set():
                regions.members.write_configuration(2, ids=(staying, "sh-gateway"))
                assert regions.members.gateway(staying).network.refresh()
                pause.go.set()

        with owner_stream(regions, pause), pytest.raises(error) as cut:
            regions.clients["gd-health"].fetch(BIG, tmp_path / "big.bin", progress=leave)
        assert cut.value.reason == reason
    finally:
        pause.go.set()
        regions.close()
