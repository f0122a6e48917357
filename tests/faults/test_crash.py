"""Crash safety: SIGKILL the gateway at random moments under load, restart it, lose nothing.

16 agencies publish, request and fetch concurrently while the gateway is killed at least five
times. Afterwards every operation a client saw acknowledged is stored exactly once with its
audit event, no blob or temp file is left without its row, the audit log verifies, and every
agency's saved checkpoint is extended by the restarted gateway's.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from bench.workload import Workload, agency_specs, inspect_storage
from gateway import config as config_module
from gateway.blobs import BlobStore
from tests.support.gateway_process import running_gateway

SEED = 20250806
KILLS = 5
AGENCIES = 16


@pytest.mark.slow
def test_sigkill_under_load_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    specs = agency_specs(AGENCIES)
    with running_gateway(tmp_path / "net", specs) as gateway:
        workload = Workload(gateway.target, gateway.layout, [s.id for s in specs], seed=SEED,
                            inbox=tmp_path / "inbox", timeout=10.0)
        workload.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.5))
            gateway.kill()
            gateway.start()
        time.sleep(1.0)  # some load on the last restart, too
        ledger = workload.finish()
        assert not ledger.failures, ledger.failures[:10]
        assert ledger.versions and ledger.requests and ledger.exchanges, ledger
        # The checkpoints the agencies saved before the crashes are extended by the new ones.
        for spec in specs:
            with gateway.agency(spec.id) as client:
                client.checkpoint()
        assert gateway.stop_gracefully(timeout=30) == 0

    found = inspect_storage(gateway.layout, ledger)
    assert not found.problems, found.problems[:20]
    assert gateway.starts == KILLS + 1


def test_restart_removes_blobs_no_row_names(tmp_path: Path) -> None:
    """A kill between moving a blob into place and committing its row leaves a blob no row
    names; start-up recovery removes it (and the temp files of interrupted uploads)."""
    with running_gateway(tmp_path / "net", agency_specs(1)) as gateway:
        config = config_module.load(gateway.layout.config_path)
        with gateway.agency("load-00") as client:
            client.publish("kept", b"kept content\n", title="Kept", media_type="CSV")
        gateway.kill()
        store = BlobStore(config.path(config.storage.blobs))
        orphan = store.path("load-00", "ab" * 32)
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"content whose row was never committed")
        (store.tmp / "upload-interrupted").write_bytes(b"half an upload")
        gateway.start()
        assert not orphan.exists()
        assert not list(store.tmp.iterdir())
        with gateway.agency("load-00") as client:
            assert client.get("kept").latest_version == 1
        assert gateway.stop_gracefully(timeout=30) == 0



def test_fetch_whose_receipt_was_lost_starts_anew(tmp_path: Path) -> None:
    """A crash after an exchange completed but before its receipt arrived leaves the SDK's
    resume files naming a COMPLETED exchange; the next fetch starts a new exchange."""
    owner, reader = (spec.id for spec in agency_specs(2))
    with running_gateway(tmp_path / "net", agency_specs(2)) as gateway:
        with gateway.agency(owner) as client:
            client.publish("survey", b"region,count\n1,2\n", title="Survey", media_type="CSV",
                           sharing_type="UNCONDITIONAL")
            dataset = client.dataset_name("survey")
        with gateway.agency(reader) as client:
            client.request_access(dataset, purpose="STATISTICS", purpose_text="survey",
                                  legal_basis="Statistics Law of the PRC, article 7")
            target = tmp_path / "survey.csv"
            first = client.fetch(dataset, to=target)
            target.with_name("survey.csv.part").write_bytes(b"region")
            target.with_name("survey.csv.part.exchange").write_text(
                f"{first.receipt.exchange}\n{dataset}\n")
            again = client.fetch(dataset, to=target)
        assert again.receipt.exchange != first.receipt.exchange
        assert target.read_bytes() == b"region,count\n1,2\n"
        assert gateway.stop_gracefully(timeout=30) == 0
