"""A blob folder of the global layout of earlier releases (`sha256/ab/cd/<hex>`, one file per
content whoever published it) is converted at start into one namespace per publishing agency,
and every version is still fetched and verified afterwards."""

from __future__ import annotations

import os
from pathlib import Path

from bench.workload import agency_specs
from gateway import config as config_module
from gateway.blobs import BlobStore
from tests.support.gateway_process import running_gateway

SHARED = b"region,count\n1,2\n"
OWN = b"region,count\n3,4\n"


def to_global_layout(store: BlobStore) -> None:
    """Store every blob as a release before per-agency namespaces did: once, by hash."""
    for (_, digest), path in store.stored().items():
        target = store.root / "sha256" / digest[:2] / digest[2:4] / digest
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    for folder in sorted(store.agencies.glob("**/"), reverse=True):
        folder.rmdir()


def test_a_blob_folder_of_the_global_layout_is_converted_at_start(tmp_path: Path) -> None:
    first, second, reader = (spec.id for spec in agency_specs(3))
    with running_gateway(tmp_path / "net", agency_specs(3)) as gateway:
        datasets = []
        for owner, content in ((first, SHARED), (second, SHARED), (second, OWN)):
            with gateway.agency(owner) as client:
                name = f"survey-{len(datasets)}"
                client.publish(name, content, title="Survey", media_type="CSV",
                               sharing_type="UNCONDITIONAL")
                datasets.append((client.dataset_name(name), content))
        assert gateway.stop_gracefully(timeout=30) == 0
        config = config_module.load(gateway.layout.config_path)
        store = BlobStore(config.path(config.storage.blobs))
        named = set(store.stored())
        to_global_layout(store)
        assert len(list((store.root / "sha256").glob("*/*/*"))) == 2

        gateway.start()
        assert set(store.stored()) == named
        assert not (store.root / "sha256").exists()
        shared = [path for path in store.stored().values() if path.read_bytes() == SHARED]
        assert len({path.stat().st_ino for path in shared}) == 1  # still stored once
        with gateway.agency(reader) as client:
            for number, (dataset, content) in enumerate(datasets):
                client.request_access(dataset, purpose="STATISTICS", purpose_text="survey",
                                      legal_basis="Statistics Law of the PRC, article 7")
                target = tmp_path / f"fetched-{number}.csv"
                assert client.fetch(dataset, to=target).receipt
                assert target.read_bytes() == content
        assert gateway.stop_gracefully(timeout=30) == 0
