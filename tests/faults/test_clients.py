"""Clients that misbehave: one killed mid-upload or mid-fetch, one that stops reading a large
fetch; and SIGTERM while agencies are busy. The gateway runs in a child process throughout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agencies import errors
from bench.workload import EXPECTED_WHILE_DOWN, Workload, agency_specs, inspect_storage
from gateway import config as config_module
from gateway.storage import audit as audit_sql
from tests.support.exchange import wait_for
from tests.support.gateway_process import GatewayProcess, client_process, running_gateway

MiB = 1024 * 1024
LARGE = 256 * MiB
MEMORY_BOUND = 64 * MiB
"""How much the gateway may grow while a client stalls on a LARGE fetch: flow control must
keep it from buffering the content."""

OWNER, READER = "load-00", "load-01"
LARGE_DATASET = f"agencies/{OWNER}/datasets/large-survey"


@dataclass
class Network:
    gateway: GatewayProcess
    blobs: Path
    database: Path

    def query(self, sql: str, *params: object) -> list[tuple]:
        conn = audit_sql.connect_readonly(self.database)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def leaves(self) -> int:
        return self.query("SELECT COUNT(*) FROM audit_leaves")[0][0]

    def last_event(self) -> tuple[str, str, str]:
        action, outcome, data = self.query("SELECT action, outcome, record FROM audit_leaves"
                                           " ORDER BY leaf_index DESC LIMIT 1")[0]
        return action, outcome, data.decode()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A gateway with a LARGE dataset of OWNER that READER holds a grant on."""
    root = tmp_path_factory.mktemp("clients")
    with running_gateway(root / "net", agency_specs(2)) as gateway:
        content = root / "large.bin"
        with content.open("wb") as out:
            block = bytes(range(256)) * 4096
            for _ in range(LARGE // len(block)):
                out.write(block)
        with gateway.agency(OWNER) as owner:
            owner.publish(LARGE_DATASET, content, title="A large survey", media_type="CSV",
                          classification="INTERNAL", sharing_type="UNCONDITIONAL")
        content.unlink()
        with gateway.agency(READER) as reader:
            reader.request_access(LARGE_DATASET, purpose="STATISTICS", purpose_text="survey",
                                  legal_basis="Statistics Law of the PRC, article 7")
        config = config_module.load(gateway.layout.config_path)
        yield Network(gateway, config.path(config.storage.blobs),
                      config.path(config.storage.database))


def test_client_killed_mid_upload_leaves_nothing(network: Network) -> None:
    gateway = network.gateway
    dataset = f"agencies/{OWNER}/datasets/never-finished"
    before = network.leaves()
    uploader = client_process("upload", gateway.target, gateway.layout.certs(OWNER), dataset,
                              64 * MiB)
    wait_for(lambda: list((network.blobs / "tmp").iterdir()), seconds=30)
    uploader.kill()
    uploader.wait()
    wait_for(lambda: network.leaves() > before and not list((network.blobs / "tmp").iterdir()),
             seconds=30)
    assert network.leaves() == before + 1
    action, outcome, data = network.last_event()
    assert (action, outcome) == ("catalog.publish", "REFUSED")
    assert "UPLOAD_CANCELLED" in data or "CONTENT_SIZE_MISMATCH" in data
    assert network.query("SELECT COUNT(*) FROM datasets WHERE name = ?", dataset) == [(0,)]
    # Only the large dataset's blob is stored.
    assert len(list((network.blobs / "agencies").glob("*/sha256/*/*/*"))) == 1


def test_client_killed_mid_fetch_breaks_the_exchange(network: Network, tmp_path: Path) -> None:
    gateway = network.gateway
    fetcher = client_process("fetch", gateway.target, gateway.layout.certs(READER),
                             LARGE_DATASET, tmp_path / "large.bin")
    fetcher.kill()
    fetcher.wait()
    [(name,)] = wait_for(lambda: network.query(
        "SELECT name FROM exchanges WHERE requester = ? AND state = 'BROKEN'", READER),
        seconds=30)
    events = network.query("SELECT action, outcome FROM audit_leaves WHERE CAST(record AS TEXT)"
                           " LIKE ? ORDER BY leaf_index", f"%{name}%")
    assert events == [("exchange.fetch.start", "ALLOWED"), ("exchange.fetch.break", "ALLOWED")]


def test_stalled_reader_does_not_grow_the_gateway(network: Network, tmp_path: Path) -> None:
    gateway = network.gateway
    stalled, resume = threading.Event(), threading.Event()
    outcome: list[object] = []

    def on_chunk(done: int, total: int) -> None:
        if not stalled.is_set():
            stalled.set()
            resume.wait(60)

    def fetch() -> None:
        with gateway.agency(READER) as reader:
            try:
                outcome.append(reader.fetch(LARGE_DATASET, to=tmp_path / "large.bin",
                                            progress=on_chunk))
            except errors.GovshareError as exc:
                outcome.append(exc)

    before = gateway.rss_bytes()
    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    try:
        assert stalled.wait(60)
        peak = before
        for _ in range(20):  # the gateway has had time to run ahead as far as it can
            peak = max(peak, gateway.rss_bytes())
            time.sleep(0.1)
    finally:
        resume.set()
        thread.join(120)
    assert peak - before < MEMORY_BOUND, f"grew {(peak - before) / MiB:.0f} MiB while stalled"
    [fetched] = outcome
    assert not isinstance(fetched, Exception), fetched
    assert fetched.receipt.content_size == LARGE
    assert (tmp_path / "large.bin").stat().st_size == LARGE


@pytest.mark.slow
def test_sigterm_under_load_finishes_cleanly(tmp_path: Path) -> None:
    specs = agency_specs(16)
    grace = 3.0
    with running_gateway(tmp_path / "net", specs, server={"grace_seconds": grace}) as gateway:
        workload = Workload(gateway.target, gateway.layout, [s.id for s in specs], seed=8,
                            inbox=tmp_path / "inbox", timeout=10.0)
        workload.start()
        time.sleep(2.0)
        assert gateway.stop_gracefully(timeout=grace + 20) == 0
        ledger = workload.finish()
    assert not ledger.failures, ledger.failures[:10]
    assert set(ledger.expected_failures) <= {code.name for code in EXPECTED_WHILE_DOWN}
    assert ledger.acknowledged
    found = inspect_storage(gateway.layout, ledger)
    assert not found.problems, found.problems[:20]
