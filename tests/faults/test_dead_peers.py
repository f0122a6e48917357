"""Peers that vanish without closing their connection (power off, cable pulled: no FIN or RST).

On loopback a process frozen with SIGSTOP stands in for a vanished host: its kernel still
acknowledges TCP, so only HTTP/2 keepalive PINGs, which its stopped gRPC threads no longer
answer, tell it apart from a live but quiet peer."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agencies import errors
from agencies.client import KEEPALIVE_OPTIONS
from agencies.sim.roster import AgencySpec
from gateway import config as config_module
from gateway.storage import audit as audit_sql
from tests.support.exchange import wait_for
from tests.support.gateway_process import GatewayProcess, client_process, running_gateway

MiB = 1024 * 1024
AGENCY = AgencySpec("gd-health", "Guangdong Provincial Health Commission", "440000")
QUICK_KEEPALIVE = {"keepalive_seconds": 1, "keepalive_timeout_seconds": 1}
"""The gateway's [server] keys in these tests: a frozen peer is dropped within about 2 s."""
DETECTED_WITHIN = 20.0
"""Seconds within which a frozen peer must be found out with 1 s keepalive settings."""


def publish(gateway: GatewayProcess, dataset: str) -> None:
    """A dataset of AGENCY, so that its watches get an event."""
    with gateway.agency(AGENCY.id) as owner:
        owner.publish(f"agencies/{AGENCY.id}/datasets/{dataset}", b"region,beds\n1,2\n",
                      title="Beds", media_type="CSV")


def first_event(client) -> Iterator:
    """A watch from the first event, opened: its first event has arrived."""
    watch = client.watch(cursor="0")
    next(watch)
    return watch


def frozen(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def query(gateway: GatewayProcess, sql: str, *params: object) -> list[tuple]:
    config = config_module.load(gateway.layout.config_path)
    conn = audit_sql.connect_readonly(config.path(config.storage.database))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_gateway_releases_the_stream_of_a_frozen_client(tmp_path: Path) -> None:
    with running_gateway(tmp_path / "net", [AGENCY],
                         server=QUICK_KEEPALIVE,
                         limits={"max_streams_per_agency": 1}) as gateway:
        publish(gateway, "beds")
        watcher = client_process("watch", gateway.target, gateway.layout.certs(AGENCY.id))
        try:
            with gateway.agency(AGENCY.id) as agency:
                with pytest.raises(errors.ResourceExhausted) as held:
                    first_event(agency)
                assert held.value.reason == "TOO_MANY_STREAMS"
                refused = 1
                frozen(watcher.pid)
                deadline = time.monotonic() + DETECTED_WITHIN
                while True:  # until the frozen watcher's slot is free
                    try:
                        first_event(agency).close()
                        break
                    except errors.ResourceExhausted as exc:
                        assert exc.reason == "TOO_MANY_STREAMS"
                        refused += 1
                        assert time.monotonic() < deadline, (
                            f"the frozen client still holds its stream after {DETECTED_WITHIN} s")
                        time.sleep(0.5)
        finally:
            watcher.kill()  # SIGKILL ends a stopped process too
            watcher.wait()
        watches = query(gateway, "SELECT outcome, record FROM audit_leaves WHERE action ="
                        " 'exchange.watch'")
        assert len(watches) == refused  # each refusal audited; watches that ran are not
        assert all(outcome == "REFUSED" and b"TOO_MANY_STREAMS" in record
                   for outcome, record in watches)


def test_fetch_of_a_frozen_client_breaks(tmp_path: Path) -> None:
    reader = AgencySpec("sz-market", "Shenzhen Market Regulation Bureau", "440300")
    dataset = f"agencies/{AGENCY.id}/datasets/survey"
    with running_gateway(tmp_path / "net", [AGENCY, reader],
                         server=QUICK_KEEPALIVE) as gateway:
        with gateway.agency(AGENCY.id) as owner:  # far more than flow control lets through
            owner.publish(dataset, bytes(32 * MiB), title="A survey", media_type="CSV",
                          sharing_type="UNCONDITIONAL")
        with gateway.agency(reader.id) as client:
            client.request_access(dataset, purpose="STATISTICS", purpose_text="survey",
                                  legal_basis="Statistics Law of the PRC, article 7")
        fetcher = client_process("fetch", gateway.target, gateway.layout.certs(reader.id),
                                 dataset, tmp_path / "survey.csv")
        try:
            frozen(fetcher.pid)
            [(name,)] = wait_for(lambda: query(gateway, "SELECT name FROM exchanges WHERE"
                                               " state = 'BROKEN'"), seconds=DETECTED_WITHIN)
        finally:
            fetcher.kill()
            fetcher.wait()
        events = query(gateway, "SELECT action, outcome FROM audit_leaves WHERE CAST(record AS"
                       " TEXT) LIKE ? ORDER BY leaf_index", f"%{name}%")
        assert events == [("exchange.fetch.start", "ALLOWED"),
                          ("exchange.fetch.break", "ALLOWED")]


def test_watch_of_a_frozen_gateway_ends_with_unavailable(tmp_path: Path) -> None:
    # The gateway accepts the client's PINGs every second (its default minimum is 10 s).
    with running_gateway(tmp_path / "net", [AGENCY],
                         server={"min_client_ping_seconds": 0.5}) as gateway:
        publish(gateway, "beds")
        outcome: list[object] = []
        delivered = threading.Event()

        def watch() -> None:
            with gateway.agency(AGENCY.id, channel_options=[
                    ("grpc.keepalive_time_ms", 1000), ("grpc.http2.ping_timeout_ms", 1000)
            ]) as agency:
                try:
                    for _event in agency.watch(cursor="0"):
                        delivered.set()
                except errors.GovshareError as exc:
                    outcome.append(exc)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        assert delivered.wait(30)
        time.sleep(5)  # 5 PINGs answered, more than the 2 strikes a gateway forgives: accepted
        assert not outcome, outcome
        delivered.clear()
        publish(gateway, "clinics")
        assert delivered.wait(30), "the watch stopped delivering events"
        frozen(gateway.pid)
        thread.join(DETECTED_WITHIN)
        assert not thread.is_alive(), f"the watch still hangs {DETECTED_WITHIN} s after the" \
            " gateway froze"
        [failure] = outcome
        assert isinstance(failure, errors.Unavailable), failure


def test_a_client_pinging_more_often_than_the_gateway_accepts_loses_its_calls(
        tmp_path: Path) -> None:
    with running_gateway(tmp_path / "net", [AGENCY],
                         server={"min_client_ping_seconds": 5}) as gateway:
        publish(gateway, "beds")
        with gateway.agency(AGENCY.id, channel_options=[("grpc.keepalive_time_ms", 1000)]) as \
                agency:
            watch = first_event(agency)
            started = time.monotonic()
            with pytest.raises(errors.Unavailable, match="Too many pings"):
                next(watch)  # no event comes: the gateway's GOAWAY ends the watch
            assert time.monotonic() - started < DETECTED_WITHIN


def test_the_sdk_pings_no_more_often_than_the_gateway_accepts_by_default() -> None:
    sdk_interval = dict(KEEPALIVE_OPTIONS)["grpc.keepalive_time_ms"] / 1000
    assert sdk_interval >= 2 * config_module.ServerConfig().min_client_ping_seconds


def test_keepalive_settings_are_checked_at_load(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text("[server]\nkeepalive_seconds = 0.5\nkeepalive_timeout_seconds = 3000000\n"
                    "min_client_ping_seconds = -1\n")
    with pytest.raises(ValueError) as caught:
        config_module.load(path)
    message = str(caught.value)
    longest = config_module.LONGEST_TIMER  # gRPC takes them as 32-bit milliseconds
    assert f"[server] keepalive_seconds must be 1 to {longest} seconds, got 0.5" in message
    assert (f"[server] keepalive_timeout_seconds must be 1 to {longest} seconds, got 3000000"
            in message)
    assert f"[server] min_client_ping_seconds must be 0 to {longest} seconds, got -1" in message
