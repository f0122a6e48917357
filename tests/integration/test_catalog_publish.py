"""PublishDataset through a real gateway: the round trip, and every refusal leaving nothing behind
but its audit event."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agencies import errors
from agencies.catalog import verify_signed_manifest
from gateway import blobs, catalog
from gateway.v1 import catalog_pb2
from govshare import envelopes, spool
from govshare import errors as gateway_errors
from govshare.signing import SigningKey
from tests.support.network import start_network
from tests.support.publishing import (
    CONTENT,
    SCHEMA,
    chunked,
    failing_batch,
    manifest,
    publish_in_batch_with,
    write_event,
)

TABLES = ("datasets", "dataset_versions", "dataset_tags", "events")


class Snapshot:
    """Row counts, blob files and audit leaves before a refusal, to check what it left."""

    def __init__(self, network: Any):
        self.network = network
        self.counts = self._counts()
        self.files = self._files()
        self.leaves = self._leaves()

    def _conn(self) -> Any:
        return self.network.gateway.db.reader()

    def _counts(self) -> dict[str, int]:
        return {t: self._conn().execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in TABLES}

    def _files(self) -> set[Path]:
        return {p for p in self.network.gateway.blobs.root.rglob("*") if p.is_file()}

    def _leaves(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM audit_leaves").fetchone()[0]

    def assert_only_refusal(self, reason: str = "") -> str:
        """Check that only one refusal was written, its reason ("REASON: message") holding
        `reason`; returns that reason."""
        assert self._counts() == self.counts
        assert self._files() == self.files
        rows = self._conn().execute(
            "SELECT action, outcome, record FROM audit_leaves WHERE leaf_index >= ?"
            " ORDER BY leaf_index", (self.leaves,)).fetchall()
        assert [(action, outcome) for action, outcome, _ in rows] == [
            ("catalog.publish", "REFUSED")]
        refusal = json.loads(rows[0][2])["reason"]
        assert reason in refusal
        return refusal


def test_publish_round_trip(network: Any, tmp_path: Path) -> None:
    client = network.agency("gd-health")
    source = tmp_path / "beds.csv"
    source.write_bytes(CONTENT)
    seen: list[tuple[int, int]] = []
    response = client.publish("hospital-beds", source, title="Hospital beds",
                              abstract="Beds per city", media_type="CSV", schema=SCHEMA,
                              classification="PUBLIC", sharing_type="UNCONDITIONAL",
                              update_cycle="MONTHLY", tags=["health"],
                              progress=lambda sent, total: seen.append((sent, total)),
                              chunk_size=1024)
    version = response.dataset_version
    assert version.name == "agencies/gd-health/datasets/hospital-beds/versions/1"
    assert version.manifest.content_sha256 == hashlib.sha256(CONTENT).digest()
    assert not response.content_deduplicated
    assert seen[-1] == (len(CONTENT), len(CONTENT))
    assert client.verify_manifest(version) == version.manifest

    blob = network.gateway.blobs
    digest = hashlib.sha256(CONTENT).hexdigest()
    assert blob.open("gd-health", digest).read() == CONTENT and blob.verify("gd-health", digest)
    assert list(blob.tmp.iterdir()) == []

    dataset = network.agency("zj-stats").get("agencies/gd-health/datasets/hospital-beds")
    assert dataset.latest_version == 1 and dataset.region_code == "440000"
    assert dataset.publisher == "agencies/gd-health"
    assert dataset.state == catalog_pb2.DATASET_STATE_ACTIVE
    assert dataset.manifest.title == "Hospital beds"

    leaf = network.gateway.db.reader().execute(
        "SELECT action, outcome, record FROM audit_leaves WHERE leaf_index = ?",
        (version.audit_leaf_index,)).fetchone()
    assert leaf[:2] == ("catalog.publish", "ALLOWED")
    assert envelopes.envelope_id(version.signed_manifest) in leaf[2].decode()
    event = network.gateway.db.reader().execute("SELECT type, resource FROM events").fetchall()
    assert event == [("DATASET_VERSION_PUBLISHED", version.name)]


def test_content_flushed_in_segments_is_stored_intact(network: Any, monkeypatch) -> None:
    # Large uploads go around the page cache through a staging buffer: make it wrap often.
    monkeypatch.setattr(spool, "DIRECT_BUFFER", 64 * 1024)
    content = os.urandom(1024 * 1024 + 7)
    version = network.agency("gd-health").publish(
        "hospital-beds", content, title="Hospital beds", chunk_size=16 * 1024).dataset_version
    digest = hashlib.sha256(content).hexdigest()
    assert version.manifest.content_sha256.hex() == digest
    assert network.gateway.blobs.open("gd-health", digest).read() == content


def test_new_versions_and_identical_content_stored_once(network: Any) -> None:
    client = network.agency("gd-health")
    client.publish("beds", CONTENT, title="Beds")
    second = client.publish("beds", iter(chunked(CONTENT)), title="Beds, again", tags=["x"])
    other = client.publish("beds-copy", CONTENT, title="Copy")
    assert second.dataset_version.version == 2
    assert second.content_deduplicated and other.content_deduplicated
    assert list(network.gateway.blobs.stored()) == [
        ("gd-health", hashlib.sha256(CONTENT).hexdigest())]
    assert client.get("beds").manifest.title == "Beds, again"
    assert [v.version for v in client.versions("beds")] == [2, 1]


def test_offline_verification_detects_a_changed_manifest(network: Any) -> None:
    client = network.agency("gd-health")
    version = client.publish("beds", CONTENT, title="Beds").dataset_version
    pem = client.agency("gd-health").signing_certificate_pem
    assert verify_signed_manifest(version.signed_manifest, pem).title == "Beds"
    version.signed_manifest.payload = manifest(title="Forged").SerializeToString()
    with pytest.raises(errors.VerificationError):
        verify_signed_manifest(version.signed_manifest, pem)
    with pytest.raises(errors.VerificationError):
        client.verify_manifest(version)


def _upload(client: Any, statement: catalog_pb2.Manifest, chunks: list[bytes],
            key: SigningKey | None = None) -> errors.GovshareError:
    envelope = envelopes.seal(key or client.signing_key, envelopes.MANIFEST, statement)
    with pytest.raises(errors.GovshareError) as caught:
        client.upload(envelope, chunks, sum(map(len, chunks)))
    return caught.value


def _expect(error: errors.GovshareError, code: grpc.StatusCode, reason: str) -> None:
    assert (error.code, error.reason) == (code, reason), str(error)


def test_manifest_signed_by_another_agency_is_refused(network: Any) -> None:
    client = network.agency("gd-health")
    before = Snapshot(network)
    other_key = network.agency("sz-market").signing_key
    error = _upload(client, manifest(), chunked(CONTENT), key=other_key)
    _expect(error, grpc.StatusCode.PERMISSION_DENIED, "SIGNER_NOT_CALLER")
    before.assert_only_refusal("SIGNER_NOT_CALLER")


def test_manifest_signed_by_an_unknown_key_is_refused(network: Any) -> None:
    client = network.agency("gd-health")
    before = Snapshot(network)
    error = _upload(client, manifest(), chunked(CONTENT), key=SigningKey.generate())
    _expect(error, grpc.StatusCode.PERMISSION_DENIED, "SIGNER_UNKNOWN")
    before.assert_only_refusal("SIGNER_UNKNOWN")


def test_tampered_manifest_is_refused(network: Any) -> None:
    client = network.agency("gd-health")
    before = Snapshot(network)
    envelope = envelopes.seal(client.signing_key, envelopes.MANIFEST, manifest())
    envelope.payload = manifest(title="Tampered").SerializeToString()
    with pytest.raises(errors.PermissionDenied) as caught:
        client.upload(envelope, chunked(CONTENT), len(CONTENT))
    assert caught.value.reason == "SIGNATURE_INVALID"
    before.assert_only_refusal("SIGNATURE_INVALID")


def test_publishing_under_another_agency_is_refused(network: Any) -> None:
    client = network.agency("gd-health")
    before = Snapshot(network)
    error = _upload(client, manifest("agencies/sz-market/datasets/beds"), chunked(CONTENT))
    _expect(error, grpc.StatusCode.PERMISSION_DENIED, "NOT_PUBLISHER")
    before.assert_only_refusal("NOT_PUBLISHER")


@pytest.mark.parametrize(("fields", "field"), [
    ({"dataset": "agencies/gd-health/datasets/../beds"}, "manifest.dataset"),
    ({"dataset": "agencies/gd-health/datasets/a/b"}, "manifest.dataset"),
    ({"dataset": "agencies/gd-health/datasets/beds\0x"}, "manifest.dataset"),
    ({"dataset": "agencies/gd-health/datasets/" + "b" * 300}, "manifest.dataset"),
    ({"dataset": "agencies/../datasets/beds"}, "manifest.dataset"),
    ({"media_type": 99}, "manifest.media_type"),
    ({"classification": 0}, "manifest.classification"),
    ({"sharing_type": 42}, "manifest.sharing_type"),
    ({"update_cycle": 9}, "manifest.update_cycle"),
    ({"title": ""}, "manifest.title"),
    ({"title": "t" * 201}, "manifest.title"),
    ({"tags": ["a"] * 21}, "manifest.tags"),
    ({"version": 0}, "manifest.version"),
    ({"content_sha256": b"short"}, "manifest.content_sha256"),
    ({"schema": [catalog_pb2.SchemaField(name="x", type=77,
                                         sensitivity=catalog_pb2.SENSITIVITY_NONE)]},
     "manifest.schema[0].type"),
])
def test_invalid_fields_are_refused_naming_the_field(network: Any, fields: dict,
                                                     field: str) -> None:
    client = network.agency("gd-health")
    before = Snapshot(network)
    error = _upload(client, manifest(**fields), chunked(CONTENT))
    _expect(error, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert error.metadata["field"] == field
    before.assert_only_refusal(field)


def test_duplicate_and_older_versions_are_refused(network: Any) -> None:
    client = network.agency("gd-health")
    client.publish("hospital-beds", CONTENT, title="Beds", version=2)
    before = Snapshot(network)
    _expect(_upload(client, manifest(version=2), chunked(CONTENT)),
            grpc.StatusCode.ALREADY_EXISTS, "VERSION_EXISTS")
    before.assert_only_refusal("VERSION_EXISTS")
    before = Snapshot(network)
    _expect(_upload(client, manifest(version=1), chunked(CONTENT)),
            grpc.StatusCode.FAILED_PRECONDITION, "VERSION_NOT_INCREASING")
    before.assert_only_refusal("VERSION_NOT_INCREASING")


def test_not_shared_without_legal_basis_is_refused(network: Any) -> None:
    client = network.agency("gd-health")
    before = Snapshot(network)
    statement = manifest(sharing_type=catalog_pb2.SHARING_TYPE_NOT_SHARED)
    _expect(_upload(client, statement, chunked(CONTENT)),
            grpc.StatusCode.INVALID_ARGUMENT, "LEGAL_BASIS_REQUIRED")
    before.assert_only_refusal("LEGAL_BASIS_REQUIRED")
    statement.legal_basis = "Personal Information Protection Law, art. 28"
    envelope = envelopes.seal(client.signing_key, envelopes.MANIFEST, statement)
    assert client.upload(envelope, chunked(CONTENT), len(CONTENT)).dataset_version.version == 1


@pytest.mark.parametrize(("content", "code", "reason"), [
    (CONTENT[:-1] + b"!", grpc.StatusCode.DATA_LOSS, "CONTENT_HASH_MISMATCH"),
    (CONTENT[: len(CONTENT) // 2], grpc.StatusCode.DATA_LOSS, "CONTENT_SIZE_MISMATCH"),
    (CONTENT + b"more", grpc.StatusCode.INVALID_ARGUMENT, "CONTENT_SIZE_MISMATCH"),
    (b"", grpc.StatusCode.DATA_LOSS, "CONTENT_SIZE_MISMATCH"),
])
def test_content_not_matching_the_manifest_is_refused(network: Any, content: bytes,
                                                      code: grpc.StatusCode,
                                                      reason: str) -> None:
    client = network.agency("gd-health")
    before = Snapshot(network)
    _expect(_upload(client, manifest(), chunked(content)), code, reason)
    before.assert_only_refusal(reason)


def test_empty_chunk_and_missing_manifest_are_refused(network: Any) -> None:
    client = network.agency("gd-health")
    before = Snapshot(network)
    _expect(_upload(client, manifest(), [b""]), grpc.StatusCode.INVALID_ARGUMENT, "CHUNK_SIZE")
    before.assert_only_refusal("CHUNK_SIZE")
    before = Snapshot(network)
    requests = iter([catalog_pb2.PublishDatasetRequest(chunk=b"data")])
    with pytest.raises(errors.InvalidArgument) as caught:
        client._call(client.catalog.PublishDataset, requests)
    assert caught.value.metadata["field"] == "manifest"
    before.assert_only_refusal("manifest")


def test_oversize_dataset_is_refused_before_its_bytes(tmp_path: Path) -> None:
    network = start_network(tmp_path / "net", limits={"max_dataset_bytes": 1000})
    try:
        client = network.agency("gd-health")
        before = Snapshot(network)
        offered = 256 * 1024 * 1024
        sent: list[int] = []

        def chunks() -> Iterator[bytes]:
            chunk = b"x" * (1024 * 1024)
            for _ in range(offered // len(chunk)):
                sent.append(len(chunk))
                yield chunk

        statement = manifest(content_size=offered)
        envelope = envelopes.seal(client.signing_key, envelopes.MANIFEST, statement)
        with pytest.raises(errors.GovshareError) as caught:
            client.upload(envelope, chunks(), offered)
        _expect(caught.value, grpc.StatusCode.RESOURCE_EXHAUSTED, "DATASET_TOO_LARGE")
        assert caught.value.metadata["limit"] == "1000"
        # Refused on the manifest alone: the stream ended while gRPC's flow control still held
        # the client to its first few MiB of the 256 offered.
        assert sum(sent) <= 32 * 1024 * 1024
        before.assert_only_refusal("DATASET_TOO_LARGE")
    finally:
        network.close()


def test_cancelled_upload_leaves_nothing(network: Any) -> None:
    client = network.agency("gd-health")
    before = Snapshot(network)
    half_sent = threading.Event()
    release = threading.Event()
    envelope = envelopes.seal(client.signing_key, envelopes.MANIFEST, manifest())

    def requests() -> Iterator[catalog_pb2.PublishDatasetRequest]:
        yield catalog_pb2.PublishDatasetRequest(manifest=envelope)
        yield catalog_pb2.PublishDatasetRequest(chunk=CONTENT[:1000])
        half_sent.set()
        release.wait(30)

    future = client.catalog.PublishDataset.future(requests())
    assert half_sent.wait(30)
    _wait_for(lambda: list(network.gateway.blobs.tmp.iterdir()))  # the upload has begun
    future.cancel()
    release.set()
    _wait_for(lambda: Snapshot(network).leaves > before.leaves)
    _wait_for(lambda: not list(network.gateway.blobs.tmp.iterdir()))
    # The refusal says UPLOAD_CANCELLED, or CONTENT_SIZE_MISMATCH when grpc delivered the
    # cancellation as an early end of stream.
    reason = before.assert_only_refusal().split(":")[0]
    assert reason in ("UPLOAD_CANCELLED", "CONTENT_SIZE_MISMATCH")


def _wait_for(condition: Any) -> None:
    """Poll a condition the server reaches on its own thread (no timing is asserted)."""
    done = threading.Event()
    for _ in range(600):
        if condition():
            return
        done.wait(0.05)
    raise AssertionError("condition not reached")


def _schema_of_size(target: int) -> list[catalog_pb2.SchemaField]:
    """Schema fields making a manifest's encoding about `target` bytes."""
    field = catalog_pb2.SchemaField(name="f", type=catalog_pb2.FIELD_TYPE_STRING,
                                    description="d" * 500,
                                    sensitivity=catalog_pb2.SENSITIVITY_NONE)
    count = target // (field.ByteSize() + 8)
    return [catalog_pb2.SchemaField(name=f"f{i}", type=field.type, description=field.description,
                                    sensitivity=field.sensitivity) for i in range(count)]


def test_manifest_too_large_for_a_reply_is_refused(network: Any) -> None:
    # 1000 fields with 200-character Chinese descriptions pass every field limit, but a reply
    # holding the manifest twice would not fit the message limit.
    client = network.agency("gd-health")
    limit = catalog.max_manifest_bytes(network.gateway.config.limits)
    before = Snapshot(network)
    big = [catalog_pb2.SchemaField(name=f"f{i}", type=catalog_pb2.FIELD_TYPE_STRING,
                                   description="字" * 200, sensitivity=catalog_pb2.SENSITIVITY_NONE)
           for i in range(1000)]
    error = _upload(client, manifest(schema=big), chunked(CONTENT))
    _expect(error, grpc.StatusCode.INVALID_ARGUMENT, "MANIFEST_TOO_LARGE")
    assert error.metadata["limit"] == str(limit) and str(limit) in str(error)
    before.assert_only_refusal("MANIFEST_TOO_LARGE")


def test_the_largest_manifest_accepted_fits_every_reply(network: Any) -> None:
    client = network.agency("gd-health")
    limit = catalog.max_manifest_bytes(network.gateway.config.limits)
    schema = _schema_of_size(limit - 2000)
    version = client.publish("wide", CONTENT, title="Wide", schema=schema,
                             classification="PUBLIC").dataset_version
    assert limit - 4000 < version.signed_manifest.ByteSize() <= limit
    client.publish("wide-too", CONTENT, title="Wide", schema=schema, classification="PUBLIC")
    stats = network.agency("zj-stats")
    assert len(stats.get("agencies/gd-health/datasets/wide").manifest.schema) == len(schema)
    assert [v.version for v in stats.versions("agencies/gd-health/datasets/wide")] == [1]
    assert len(list(stats.datasets(page_size=1000))) == 2


def test_full_disk_refuses_the_upload_and_leaves_nothing(network: Any, monkeypatch) -> None:
    def full(self: Any, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool.DirectFile, "_pwrite", full)
    # Written around the page cache even where O_DIRECT is not supported (tmpfs).
    monkeypatch.setattr(blobs, "open_direct", lambda fd, expected: spool.DirectFile(fd))
    client = network.agency("gd-health")
    before = Snapshot(network)
    content = os.urandom(spool.DIRECT_BUFFER + 1)
    statement = manifest(content=content)
    error = _upload(client, statement, chunked(content, 1024 * 1024))
    _expect(error, grpc.StatusCode.UNAVAILABLE, "STORAGE_FULL")
    before.assert_only_refusal("STORAGE_FULL")
    assert list(network.gateway.blobs.tmp.iterdir()) == []


def test_a_redone_batch_does_not_count_fresh_content_as_stored_before(network: Any) -> None:
    def failing(tx: Any) -> None:
        write_event(tx)
        raise gateway_errors.InvalidArgument("fails after writing", field="x")

    content = os.urandom(5000)
    response = publish_in_batch_with(network, failing, network.agency("gd-health"), "fresh",
                                     content)
    assert response.content_deduplicated is False
    assert network.gateway.blobs.verify("gd-health", hashlib.sha256(content).hexdigest())


def test_a_failed_batch_leaves_no_blob(network: Any) -> None:
    content = os.urandom(5000)
    error = publish_in_batch_with(network, failing_batch, network.agency("gd-health"), "fresh",
                                  content)
    _expect(error, grpc.StatusCode.UNAVAILABLE, "STORAGE_ERROR")
    assert not network.gateway.blobs.exists("gd-health", hashlib.sha256(content).hexdigest())
    assert list(network.gateway.blobs.tmp.iterdir()) == []
