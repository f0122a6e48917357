"""What the gateway and the SDK do when stored content changes under a fetch, the gateway
fails mid-stream, or a grant expires mid-stream; and whose signature a manifest may carry."""

from __future__ import annotations

import errno
import hashlib
import io
import os
from datetime import timedelta

import grpc
import pytest

from agencies import errors
from agencies.catalog import verify_signed_manifest
from gateway.v1 import catalog_pb2
from govshare import envelopes, signing, times
from tests.support.exchange import ask, publish

MiB = 1024 * 1024
BIG = os.urandom(24 * MiB)
"""Larger than what gRPC buffers in flight, so the blob can change while it is streamed."""


def exchange_states(network) -> list[str]:
    conn = network.gateway.db.reader()
    return [row[0] for row in conn.execute("SELECT state FROM exchanges ORDER BY create_time")]


def last_fetch_event(network) -> tuple[str, str, str]:
    conn = network.gateway.db.reader()
    action, outcome, record = conn.execute(
        "SELECT action, outcome, record FROM audit_leaves WHERE action LIKE 'exchange.fetch%'"
        " ORDER BY leaf_index DESC LIMIT 1").fetchone()
    return action, outcome, record.decode()


@pytest.fixture
def granted(network):
    """gd-health publishes a 24 MiB dataset; sz-market holds a grant on it. Returns the
    fetching client, the dataset and the blob's path."""
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "big-table", BIG, media_type="OCTET_STREAM")
    ask(market, dataset)
    return market, dataset, network.gateway.blobs.path("gd-health",
                                                  hashlib.sha256(BIG).hexdigest())


def flip(path, offset: int) -> None:
    """Alter one byte of the stored content in place."""
    with path.open("r+b") as blob:
        blob.seek(offset)
        blob.write(bytes([BIG[offset] ^ 1]))


def test_a_blob_written_during_a_hashing_fetch_is_hashed_again(network, granted, tmp_path):
    market, dataset, path = granted
    path.chmod(0o600)  # the ctime moves: the next fetch hashes what it streams
    altered = []

    def alter_what_was_read(done: int, total: int) -> None:
        if not altered:
            altered.append(flip(path, 0))  # the gateway read byte 0 before this write

    first = market.fetch(dataset, tmp_path / "first.bin", progress=alter_what_was_read)
    assert first.receipt.content_size == len(BIG)  # the bytes it hashed were intact

    with pytest.raises(errors.DataLoss) as lost:  # not trusted: hashed again, and refused
        market.fetch(dataset, tmp_path / "second.bin")
    assert lost.value.reason == "CONTENT_MISMATCH"
    assert exchange_states(network) == ["COMPLETED", "BROKEN"]


def test_a_blob_cut_short_during_a_fetch_is_refused(network, granted, tmp_path):
    """Right after publishing, the gateway trusts the blob without hashing it; content that
    ends early is still refused by the gateway instead of getting a receipt."""
    market, dataset, path = granted
    cut = []

    def truncate_once(done: int, total: int) -> None:
        if not cut:
            cut.append(os.truncate(path, 2 * MiB))

    with pytest.raises(errors.DataLoss) as lost:
        market.fetch(dataset, tmp_path / "big.bin", progress=truncate_once)
    assert lost.value.reason == "CONTENT_MISMATCH"
    assert exchange_states(network) == ["BROKEN"]
    assert last_fetch_event(network)[:2] == ("exchange.fetch.break", "REFUSED")
    assert not (tmp_path / "big.bin").exists() and not (tmp_path / "big.bin.part").exists()


def test_the_sdk_refuses_altered_bytes_the_gateway_did_not_hash(network, granted, tmp_path):
    """Bytes altered after the gateway's check (here while it trusts the blob it stored) reach
    the SDK, whose own hash refuses them: nothing is kept."""
    market, dataset, path = granted
    altered = []

    def alter_what_is_not_read_yet(done: int, total: int) -> None:
        if not altered:
            altered.append(flip(path, len(BIG) - 1))

    with pytest.raises(errors.VerificationError) as refused:
        market.fetch(dataset, tmp_path / "big.bin", progress=alter_what_is_not_read_yet)
    assert "content SHA-256" in refused.value.message
    assert not (tmp_path / "big.bin").exists() and not (tmp_path / "big.bin.part").exists()
    assert not (tmp_path / "big.bin.part.exchange").exists()

    with pytest.raises(errors.DataLoss):  # the write moved the ctime: now it is hashed
        market.fetch(dataset, tmp_path / "big.bin")


class FailingDisk(io.FileIO):
    """A blob whose reads past 3 MiB fail as a failing disk's do (EIO): the fault is injected
    at the file, the one place a test can make a disk fail."""

    def read(self, size: int = -1) -> bytes:
        if self.tell() >= 3 * MiB:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return super().read(size)


def test_a_failure_mid_stream_breaks_the_exchange(network, granted, tmp_path, monkeypatch):
    market, dataset, path = granted
    monkeypatch.setattr(network.gateway.blobs, "open", lambda owner, digest: FailingDisk(path))

    with pytest.raises(errors.GovshareError) as failed:
        market.fetch(dataset, tmp_path / "big.bin")

    assert failed.value.code == grpc.StatusCode.INTERNAL
    assert exchange_states(network) == ["BROKEN"]
    action, outcome, record = last_fetch_event(network)
    assert (action, outcome) == ("exchange.fetch.break", "ALLOWED")
    assert "INTERNAL" in record and "OSError" in record


def test_a_grant_expiring_mid_stream_stops_the_fetch(network, granted, tmp_path):
    market, dataset, _ = granted
    gateway = network.gateway

    def a_year_later(done: int, total: int) -> None:
        gateway.clock = lambda: times.utcnow() + timedelta(days=365)

    with pytest.raises(errors.PermissionDenied) as refused:
        market.fetch(dataset, tmp_path / "big.bin", progress=a_year_later)
    assert refused.value.reason == "GRANT_EXPIRED"
    assert exchange_states(network) == ["BROKEN"]
    assert last_fetch_event(network)[:2] == ("exchange.fetch.break", "REFUSED")


def test_a_manifest_signed_by_the_gateway_is_not_an_agencys(network):
    """The gateway's certificate chains to the CA too; it still publishes nothing."""
    certs = network.layout.certs("gateway")
    manifest = catalog_pb2.Manifest(dataset="agencies/gateway/datasets/forged", version=1,
                                    content_sha256=b"\0" * 32, content_size=1)
    envelope = envelopes.seal(signing.SigningKey.load(certs / "signing.key"),
                               envelopes.MANIFEST, manifest)
    with pytest.raises(errors.VerificationError) as refused:
        verify_signed_manifest(envelope, (certs / "signing.pem").read_bytes(),
                               (network.layout.certs("sz-market") / "ca.pem").read_bytes())
    assert "not by an agency" in refused.value.message
