"""Catalog operations of the SDK (mixed into agencies.client.AgencyClient).

    response = client.publish("hospital-beds", Path("beds.csv"), title="Hospital beds",
                              media_type="CSV", classification="PUBLIC",
                              sharing_type="UNCONDITIONAL", progress=print)
    for dataset in client.search("hospital"):
        version = next(client.versions(dataset.name))
        client.verify_manifest(version)      # re-checks the publisher's signature

The manifest is signed here with the agency's signing key; the gateway never sees the key.
Content is hashed in one pass before the upload (the manifest must carry its SHA-256), then
streamed in chunks. CSV and JSON Lines content with a schema is parsed in that same pass for its
column digests and row count (govshare.columns), which the manifest carries too: they let the
gateway deliver only the fields a grant names, verifiably. Such content must parse
(columns.ColumnError, a ValueError, otherwise).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography import x509
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from agencies import errors
from agencies.listing import Listing
from certs import ca as certs_ca
from certs.identity import identity_from_certificate
from gateway.v1 import catalog_pb2, directory_pb2, envelope_pb2
from govshare import columns, envelopes, signing
from govshare.enums import enum_value
from govshare.names import AgencyName, DatasetName

__all__ = ["CatalogMixin", "Content", "Progress", "load_certificate", "signer_certificate",
           "verify_signed_manifest"]

CHUNK_SIZE = 1024 * 1024
"""Upload chunk size; the gateway accepts up to its max_chunk_bytes (1 MiB by default)."""

Content = str | os.PathLike | bytes | Iterable[bytes]
"""What `publish` accepts: a file path, the bytes, or an iterator of byte chunks."""
Progress = Callable[[int, int], None]
"""Called after each chunk with (bytes sent, total bytes)."""


def agency_name(value: str) -> str:
    """"agencies/{id}" from a resource name or a bare agency id."""
    return value if value.startswith("agencies/") else str(AgencyName(value))


def signer_certificate(agency: directory_pb2.Agency, envelope: envelope_pb2.Envelope,
                       now: datetime | None = None) -> str:
    """The agency's signing certificate that made a manifest's signature: among the current one
    and those it replaced (each for what it signed before its retire_time), one whose key id the
    signature names and that was valid when the manifest says it was signed; else the first
    whose key id matches, or the current one (its verification then says what is wrong).
    VerificationError when only certificates retired before the signing time match."""
    wanted = {signature.key_id for signature in envelope.signatures}
    try:
        signed_at = _signed_at(catalog_pb2.Manifest.FromString(envelope.payload), now)
    except (DecodeError, errors.VerificationError):
        return agency.signing_certificate_pem  # verify_signed_manifest says why
    candidates = [agency.signing_certificate_pem] if agency.signing_key_id in wanted else []
    retired_since = []
    for retired in reversed(agency.previous_signing_certificates):
        if retired.key_id not in wanted:
            continue
        if signed_at < retired.retire_time.ToDatetime(tzinfo=UTC):
            candidates.append(retired.certificate_pem)
        else:
            retired_since.append(retired.retire_time.ToDatetime(tzinfo=UTC))
    for pem in candidates:
        certificate = load_certificate(pem, "the publisher's signing certificate")
        if certificate.not_valid_before_utc <= signed_at <= certificate.not_valid_after_utc:
            return pem
    if not candidates and retired_since:
        raise errors.VerificationError(
            f"the manifest is signed with a key {agency.name} stopped using at"
            f" {max(retired_since)}, but says it was signed later, at {signed_at}")
    return candidates[0] if candidates else agency.signing_certificate_pem


def verify_signed_manifest(
    envelope: envelope_pb2.Envelope, certificate_pem: str | bytes,
    ca_certificate_pem: str | bytes | None = None, now: datetime | None = None,
) -> catalog_pb2.Manifest:
    """Verify a signed manifest offline against its publisher's signing certificate (from the
    directory) and return the manifest; VerificationError at the first failed check.

    1. the payload type is the manifest's;
    2. it carries one Ed25519 signature by the certificate's key, which verifies over the exact
       payload bytes;
    3. the certificate is an agency's (not a gateway's or staff member's), and the manifest
       names a dataset of that agency;
    4. its create_time (which the publisher signed) is not later than `now` (default: the
       clock), give or take the clock skew certificates allow;
    5. the certificate chains to the national CA and was valid at that create_time (when
       `ca_certificate_pem` is given): what was published while it was valid stays verifiable
       after it expires.
    """
    if envelope.payload_type != envelopes.MANIFEST:
        raise errors.VerificationError(f"not a manifest: payload type {envelope.payload_type!r}")
    certificate = load_certificate(certificate_pem, "the publisher's signing certificate")
    try:
        envelopes.check_sealed(envelope, signing.VerifyKey.from_certificate(certificate),
                                envelopes.MANIFEST)
    except ValueError as exc:  # not an Ed25519 key
        raise errors.VerificationError(f"the publisher's signing certificate is not a signing"
                                       f" certificate: {exc}") from None
    except signing.SignatureError:
        raise errors.VerificationError(
            "the manifest signature does not verify with the publisher's certificate") from None
    manifest = catalog_pb2.Manifest.FromString(envelope.payload)
    try:
        signer = identity_from_certificate(certificate)
    except ValueError as exc:
        raise errors.VerificationError(f"the signing certificate names no signer: {exc}") \
            from None
    if signer.kind != "agency":
        raise errors.VerificationError(
            f"the manifest is signed by {signer.uri}, not by an agency: only agencies publish")
    dataset = DatasetName.match(manifest.dataset)
    if dataset is None or dataset.agency != signer.id:
        raise errors.VerificationError(
            f"the manifest names {manifest.dataset}, not a dataset of agency {signer.id}")
    signed_at = _signed_at(manifest, now)
    if ca_certificate_pem is not None:
        ca = load_certificate(ca_certificate_pem, "the national CA certificate")
        try:
            certs_ca.verify_chain(certificate, ca, now=signed_at)
        except certs_ca.CAError as exc:
            raise errors.VerificationError(f"the signing certificate was not valid when the"
                                           f" manifest was signed, at {signed_at}: {exc}") \
                from None
    return manifest


def load_certificate(pem: str | bytes, what: str) -> x509.Certificate:
    """A PEM certificate received (or read) for a check; VerificationError naming `what` when it
    does not parse."""
    try:
        return x509.load_pem_x509_certificate(_as_bytes(pem))
    except ValueError as exc:
        raise errors.VerificationError(f"{what} is not a PEM certificate: {exc}") from None


def _signed_at(manifest: catalog_pb2.Manifest, now: datetime | None = None) -> datetime:
    """When the publisher says it signed the manifest: not later than now (with the skew a
    fresh certificate allows), or it could claim any time a certificate was valid."""
    if not manifest.HasField("create_time"):
        raise errors.VerificationError("the manifest carries no create_time")
    try:
        signed_at = manifest.create_time.ToDatetime(tzinfo=UTC)
    except ValueError:
        raise errors.VerificationError("the manifest's create_time is not a valid time") \
            from None
    if signed_at > (now or datetime.now(UTC)) + certs_ca.CLOCK_SKEW:
        raise errors.VerificationError(
            f"the manifest says it was signed at {signed_at}, later than now: a publisher"
            " signs with the current time")
    return signed_at


class CatalogMixin:
    """Catalog calls; relies on BaseClient's _call/_stream/_pages and stubs."""

    catalog: Any
    name: str
    certs: Path
    signing_key: signing.SigningKey
    _call: Callable[..., Any]
    _pages: Callable[..., Listing[Any]]

    def dataset_name(self, dataset: str) -> str:
        """A full dataset name; a bare id is taken as one of this agency's datasets."""
        return dataset if "/" in dataset else str(AgencyName.parse(self.name).dataset(dataset))

    def publish(
        self, dataset: str, content: Content, *, title: str, abstract: str = "",
        version: int | None = None, media_type: int | str = "OCTET_STREAM",
        schema: Iterable[catalog_pb2.SchemaField] = (),
        classification: int | str = "INTERNAL", sharing_type: int | str = "CONDITIONAL",
        sharing_conditions: str = "", legal_basis: str = "",
        update_cycle: int | str = "IRREGULAR", tags: Iterable[str] = (),
        progress: Progress | None = None, chunk_size: int = CHUNK_SIZE,
    ) -> catalog_pb2.PublishDatasetResponse:
        """Sign a manifest for `content` and upload it as a new version of `dataset`.

        `version` defaults to the latest version + 1 (1 for a new dataset). Enum arguments take
        numbers or short names ("CSV", "PUBLIC", "NOT_SHARED", "MONTHLY").
        """
        name = self.dataset_name(dataset)
        kind = enum_value(catalog_pb2.MediaType, media_type)
        fields = list(schema)
        with _content(content, chunk_size, kind, [f.name for f in fields]) as (measured, chunks):
            created = timestamp_pb2.Timestamp()
            created.GetCurrentTime()
            manifest = catalog_pb2.Manifest(
                dataset=name, version=version or self._next_version(name), title=title,
                abstract=abstract, media_type=kind, schema=_with_digests(fields, measured),
                classification=enum_value(catalog_pb2.Classification, classification),
                sharing_type=enum_value(catalog_pb2.SharingType, sharing_type),
                sharing_conditions=sharing_conditions, legal_basis=legal_basis,
                update_cycle=enum_value(catalog_pb2.UpdateCycle, update_cycle), tags=list(tags),
                content_sha256=measured.sha256, content_size=measured.size,
                row_count=measured.columns.row_count if measured.columns else 0,
                create_time=created,
            )
            envelope = envelopes.seal(self.signing_key, envelopes.MANIFEST, manifest)
            return self.upload(envelope, chunks, measured.size, progress)

    def upload(
        self, envelope: envelope_pb2.Envelope, chunks: Iterable[bytes], size: int,
        progress: Progress | None = None,
    ) -> catalog_pb2.PublishDatasetResponse:
        """Stream an already signed manifest and its content (what `publish` does after
        signing; useful to send exactly the bytes you choose)."""

        def requests() -> Iterator[catalog_pb2.PublishDatasetRequest]:
            yield catalog_pb2.PublishDatasetRequest(manifest=envelope)
            sent = 0
            for chunk in chunks:
                yield catalog_pb2.PublishDatasetRequest(chunk=chunk)
                sent += len(chunk)
                if progress:
                    progress(sent, size)

        return self._call(self.catalog.PublishDataset, requests(), timeout=None)

    def get(self, dataset: str) -> catalog_pb2.Dataset:
        """A dataset with its latest version (a bare id means one of this agency's)."""
        request = catalog_pb2.GetDatasetRequest(name=self.dataset_name(dataset))
        return self._call(self.catalog.GetDataset, request).dataset

    def datasets(
        self, *, publisher: str = "-", query: str = "", region_code: str = "", tag: str = "",
        classification: int | str = 0, sharing_type: int | str = 0, dataset_id: str = "",
        show_withdrawn: bool = False, page_size: int = 0,
    ) -> Listing[catalog_pb2.Dataset]:
        """Every dataset the caller may see matching the filters, newest first, page by page.
        `publisher` is an agency id or name, "-" for all. The listing's `stale_members` name
        the members of the network whose datasets may be missing or out of date."""
        request = catalog_pb2.ListDatasetsRequest(
            parent=agency_name(publisher), query=query, region_code=region_code, tag=tag,
            classification=enum_value(catalog_pb2.Classification, classification),
            sharing_type=enum_value(catalog_pb2.SharingType, sharing_type),
            dataset_id=dataset_id, show_withdrawn=show_withdrawn, page_size=page_size,
        )
        return self._pages(self.catalog.ListDatasets, request, "datasets")

    def search(self, query: str, **filters: Any) -> Listing[catalog_pb2.Dataset]:
        """Datasets whose title, abstract, tags or field names contain every word of `query`
        (as prefixes)."""
        return self.datasets(query=query, **filters)

    def versions(self, dataset: str, *, page_size: int = 0) -> Iterator[catalog_pb2.DatasetVersion]:
        """Every version of a dataset, newest first, each with its signed manifest."""
        request = catalog_pb2.ListDatasetVersionsRequest(parent=self.dataset_name(dataset),
                                                         page_size=page_size)
        return self._pages(self.catalog.ListDatasetVersions, request, "dataset_versions")

    def withdraw(self, dataset: str, reason: str) -> catalog_pb2.Dataset:
        """Withdraw one of this agency's datasets; its history stays retrievable."""
        request = catalog_pb2.WithdrawDatasetRequest(name=self.dataset_name(dataset),
                                                     reason=reason)
        return self._call(self.catalog.WithdrawDataset, request).dataset

    def verify_manifest(self, version: catalog_pb2.DatasetVersion) -> catalog_pb2.Manifest:
        """Re-verify a version's signed manifest against its publisher's certificate from the
        directory (checked against the national CA) and that the version is what it names."""
        manifest = catalog_pb2.Manifest.FromString(version.signed_manifest.payload)
        dataset = DatasetName.match(manifest.dataset)
        if dataset is None:
            raise errors.VerificationError(
                f"{version.name} carries a manifest naming no dataset: {manifest.dataset!r}")
        agency = self.agency(str(dataset.owner))  # type: ignore[attr-defined]
        verified = verify_signed_manifest(version.signed_manifest,
                                          signer_certificate(agency, version.signed_manifest),
                                          (self.certs / "ca.pem").read_bytes())
        if version.name != str(dataset.version(verified.version)) or (
                version.HasField("manifest") and version.manifest != verified):
            raise errors.VerificationError(
                f"{version.name} does not carry the manifest its signature covers")
        return verified

    def _next_version(self, name: str) -> int:
        """The latest version + 1, or 1 for a dataset not published yet. Asked with a listing,
        which answers an empty page for a new dataset: GetDataset would answer NOT_FOUND, and
        every first publish would add a refusal to the audit log."""
        parsed = DatasetName.match(name)
        if parsed is None:
            return 1  # no dataset name: the gateway refuses the manifest, saying what to fix
        found = self.datasets(publisher=parsed.agency, dataset_id=parsed.dataset,
                              show_withdrawn=True)
        return next((dataset.latest_version for dataset in found), 0) + 1


def _as_bytes(pem: str | bytes) -> bytes:
    return pem.encode() if isinstance(pem, str) else pem


@dataclass(frozen=True)
class Measured:
    """What one pass over the content found: its SHA-256 and size, and for CSV or JSON Lines
    with a schema its column digests and row count."""

    sha256: bytes
    size: int
    columns: columns.Columns | None


@contextmanager
def _content(content: Content, chunk_size: int, media_type: int,
             fields: list[str]) -> Iterator[tuple[Measured, Iterator[bytes]]]:
    """(what `content` measures, its chunks), measured in one pass. An iterator is spooled to a
    temp file while measured, since the manifest must be signed before the first byte is sent."""
    if isinstance(content, bytes):
        view = memoryview(content)

        def chunks() -> Iterator[bytes]:
            return (bytes(view[i:i + chunk_size]) for i in range(0, len(view), chunk_size))

        yield _measure(chunks(), media_type, fields), chunks()
    elif isinstance(content, str | os.PathLike):
        with open(content, "rb") as handle:
            measured = _measure(_read_chunks(handle, chunk_size), media_type, fields)
            handle.seek(0)
            yield measured, _read_chunks(handle, chunk_size)
    else:
        with tempfile.TemporaryFile() as spool:
            measured = _measure(_spooled(content, spool), media_type, fields)
            spool.seek(0)
            yield measured, _read_chunks(spool, chunk_size)


def _measure(chunks: Iterable[bytes], media_type: int, fields: list[str]) -> Measured:
    """Hash the chunks and, for tabular content with a schema, take its column digests in the
    same pass; ValueError (columns.ColumnError) when that content does not parse."""
    hasher = signing.StreamHasher()

    def hashed() -> Iterator[bytes]:
        for chunk in chunks:
            hasher.update(chunk)
            yield chunk

    found = None
    if fields and columns.is_tabular(media_type):
        try:
            found = columns.scan(hashed(), media_type, fields)
        except columns.ColumnError as exc:
            raise columns.ColumnError(f"{exc}; fix the content, or publish it as OCTET_STREAM")\
                from None
    else:
        for _ in hashed():
            pass
    return Measured(hasher.digest(), hasher.size, found)


def _with_digests(schema: list[catalog_pb2.SchemaField],
                  measured: Measured) -> list[catalog_pb2.SchemaField]:
    """The schema fields, each carrying its column digest when the content has them."""
    if measured.columns is None:
        return schema
    signed = []
    for field in schema:
        copy = catalog_pb2.SchemaField()
        copy.CopyFrom(field)
        copy.values_sha256 = measured.columns.digests[field.name]
        signed.append(copy)
    return signed


def _spooled(content: Iterable[bytes], spool: IO[bytes]) -> Iterator[bytes]:
    for chunk in content:
        spool.write(chunk)
        yield chunk


def _read_chunks(handle: IO[bytes], chunk_size: int) -> Iterator[bytes]:
    while block := handle.read(chunk_size):
        yield block
