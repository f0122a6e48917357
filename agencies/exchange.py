"""Exchange operations of the SDK (mixed into agencies.client.AgencyClient).

    created = client.request_access("agencies/gd-health/datasets/beds", purpose="STATISTICS",
                                    purpose_text="bed capacity report",
                                    legal_basis="Statistics Law art. 7")
    client.fetch("agencies/gd-health/datasets/beds", to="beds.csv", progress=print)
    for event in client.watch():
        print(event.summary)

Statements (access requests, decisions) are signed here with the agency's key. `fetch` returns
data only after end-to-end verification, and raises VerificationError otherwise:

1. the manifest is signed by the dataset owner's signing certificate from the directory,
   which chains to the national CA (ca.pem in the certificate folder), and names the version
   delivered;
2. the content written has the manifest's size and SHA-256 (hashed while writing);
3. the receipt is signed by the gateway's signing certificate, sent in the stream's initial
   metadata and checked against the same national CA with the `gateway` identity — so trust in
   the receipt rests on the CA, not on what the gateway says about itself; with a network
   configuration held, by the signing certificate of the member that signed it, picked by the
   signature's key id in the configuration (the owner's gateway, whichever member carried the
   data here: it must be the member homing the dataset's owner, and a certificate it had
   before is taken for a receipt completed before its retirement), and the receipt's
   `carriers` must name that member first and the member at the client's address last
   (agencies/network.py);
4. the receipt names this exchange, this agency, the owner, the version, the content hash and
   size, the grant, the fields delivered, and the hash and size of what was received.

Under a grant naming fewer fields than the version's schema, the gateway delivers a projection
(FetchStart.fields: only those fields, in schema order; govshare.columns). Then the fields must be
the grant's, and once the receipt checks out one streaming pass over the received file must find
exactly those fields with the column digests and row count the publisher signed (5.);
`Fetched.fields` names them. A projection's offset counts projected bytes.

Content goes to `to + ".part"` (mode 0600: the owner's only, as the data may be confidential;
with the exchange and dataset names in `to + ".part.exchange"`) and is renamed to `to` once
verified. A fetch that broke off keeps both files; calling `fetch`
again for the same dataset resumes the same exchange from the bytes already written
(re-hashing them first). Leftovers the gateway will not resume (another dataset, an unknown or
completed exchange, more bytes than the content) are dropped and the fetch starts anew.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from agencies import errors
from agencies.catalog import load_certificate, signer_certificate, verify_signed_manifest
from certs import ca as certs_ca
from certs.identity import identity_from_certificate
from gateway.v1 import audit_pb2, catalog_pb2, envelope_pb2, exchange_pb2
from govshare import columns, envelopes, signing, times
from govshare.enums import enum_value
from govshare.ids import new_id
from govshare.names import DatasetName, ExchangeName, VersionName
from govshare.spool import Spool, open_direct

__all__ = ["DEFAULT_DURATION", "FETCH_COMPLETE", "ExchangeMixin", "FetchRecord", "Fetched",
           "Progress"]

Progress = Callable[[int, int], None]
"""Called after each chunk with (bytes written, total bytes); for a projection the total is the
size of the content it is projected from (its own is known only at its end)."""

PART_MODE = 0o600
"""Fetched content is readable by its owner only (it may be confidential); the file keeps this
mode once renamed to its target."""

DEFAULT_DURATION = timedelta(days=90)
FETCH_COMPLETE = "exchange.fetch.complete"
"""The audit action of a fetch that delivered everything and its receipt."""


@dataclass(frozen=True)
class Fetched:
    """A verified fetch: where the content is, and what vouches for it."""

    path: Path
    manifest: catalog_pb2.Manifest
    receipt: exchange_pb2.Receipt
    signed_receipt: envelope_pb2.Envelope

    @property
    def fields(self) -> list[str]:
        """The fields delivered, in schema order; empty when the whole content was."""
        return list(self.receipt.fields)


@dataclass(frozen=True)
class FetchRecord:
    """A completed fetch of one of this agency's datasets, as the audit log records it."""

    exchange: str
    requester: str
    """The agency that fetched: "agencies/{agency}"."""
    dataset_version: str
    complete_time: datetime
    audit_event: audit_pb2.AuditEvent
    """The log entry itself: `prove_inclusion(audit_event.leaf_index)` proves it is logged."""


def _nonce() -> bytes:
    return os.urandom(16)


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _duration(value: timedelta) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(value)
    return message


def _direction(value: str) -> int:
    return enum_value(exchange_pb2.Direction, value)


class ExchangeMixin:
    """Exchange calls; relies on BaseClient's _call/_stream/_pages and stubs."""

    exchange: Any
    name: str
    certs: Path
    signing_key: signing.SigningKey
    _call: Callable[..., Any]
    _check_member: Callable[[], None]
    _pages: Callable[..., Iterator[Any]]
    agency: Callable[..., Any]
    dataset_name: Callable[[str], str]

    # -- requests ----------------------------------------------------------------------------

    def access_request_statement(
        self, dataset: str, *, purpose: int | str, purpose_text: str, legal_basis: str,
        duration: timedelta = DEFAULT_DURATION, fields: Iterable[str] = (), version: int = 0,
        request_id: str | None = None,
    ) -> exchange_pb2.AccessRequestStatement:
        """The statement `request_access` signs (fresh nonce and time)."""
        return exchange_pb2.AccessRequestStatement(
            requester=self.name, dataset=dataset,
            purpose=enum_value(exchange_pb2.Purpose, purpose), purpose_text=purpose_text,
            legal_basis=legal_basis, duration=_duration(duration), fields=list(fields),
            version=version, request_id=request_id or new_id(), nonce=_nonce(),
            create_time=_now(),
        )

    def request_access(
        self, dataset: str, *, purpose: int | str, purpose_text: str, legal_basis: str,
        duration: timedelta = DEFAULT_DURATION, fields: Iterable[str] = (), version: int = 0,
        request_id: str | None = None, validate_only: bool = False,
    ) -> exchange_pb2.CreateAccessRequestResponse:
        """Sign and send an access request; `version` names the version whose terms it asks
        for (0: the latest), so that a grant opens an older version published under stricter
        terms; `validate_only` asks what would happen."""
        statement = self.access_request_statement(
            dataset, purpose=purpose, purpose_text=purpose_text, legal_basis=legal_basis,
            duration=duration, fields=fields, version=version, request_id=request_id)
        return self.send_access_request(
            envelopes.seal(self.signing_key, envelopes.ACCESS_REQUEST, statement),
            validate_only=validate_only)

    def send_access_request(
        self, envelope: envelope_pb2.Envelope, *, validate_only: bool = False
    ) -> exchange_pb2.CreateAccessRequestResponse:
        """Send an already signed statement (a retry sends the same envelope again)."""
        request = exchange_pb2.CreateAccessRequestRequest(
            parent=self.name, signed_statement=envelope, validate_only=validate_only)
        response = self._call(self.exchange.CreateAccessRequest, request)
        if response.HasField("grant"):
            self.verify_grant(response.grant)
        return response

    def access_request(self, name: str) -> exchange_pb2.AccessRequest:
        request = exchange_pb2.GetAccessRequestRequest(name=name)
        return self._call(self.exchange.GetAccessRequest, request).access_request

    def access_requests(
        self, direction: str = "OUTGOING", *, state: int | str = 0, overdue_only: bool = False,
        dataset: str = "",
    ) -> Iterator[exchange_pb2.AccessRequest]:
        """The caller's outgoing or incoming requests, newest first; `dataset` (a bare id means
        one of this agency's) keeps those for that dataset."""
        request = exchange_pb2.ListAccessRequestsRequest(
            parent=self.name, direction=_direction(direction),
            state=enum_value(exchange_pb2.AccessRequestState, state),
            overdue_only=overdue_only, dataset=self.dataset_name(dataset) if dataset else "")
        return self._pages(self.exchange.ListAccessRequests, request, "access_requests")

    # -- decisions ---------------------------------------------------------------------------

    def decision(
        self, name: str, outcome: int, *, duration: timedelta | None = None,
        fields: Iterable[str] = (), reason: str = "",
    ) -> envelope_pb2.Envelope:
        """A signed DecisionStatement on access request `name`."""
        statement = exchange_pb2.DecisionStatement(
            access_request=name, outcome=outcome, fields=list(fields), reason=reason,
            create_time=_now(), nonce=_nonce())
        if duration is not None:
            statement.duration.FromTimedelta(duration)
        return envelopes.seal(self.signing_key, envelopes.DECISION, statement)

    def approve(
        self, name: str, *, duration: timedelta | None = None, fields: Iterable[str] = (),
        reason: str = "",
    ) -> exchange_pb2.ApproveAccessRequestResponse:
        """Approve a request to one of this agency's datasets, optionally narrowing it."""
        envelope = self.decision(name, exchange_pb2.DECISION_OUTCOME_APPROVE,
                                 duration=duration, fields=fields, reason=reason)
        request = exchange_pb2.ApproveAccessRequestRequest(name=name, signed_decision=envelope)
        response = self._call(self.exchange.ApproveAccessRequest, request)
        self.verify_grant(response.grant)
        return response

    def deny(self, name: str, reason: str) -> exchange_pb2.AccessRequest:
        """Deny a request to one of this agency's datasets, saying why."""
        envelope = self.decision(name, exchange_pb2.DECISION_OUTCOME_DENY, reason=reason)
        request = exchange_pb2.DenyAccessRequestRequest(name=name, signed_decision=envelope)
        return self._call(self.exchange.DenyAccessRequest, request).access_request

    def withdraw_request(self, name: str, reason: str) -> exchange_pb2.AccessRequest:
        """Withdraw one of this agency's own PENDING requests, saying why (the owner is told);
        another request for the same dataset may then be made."""
        request = exchange_pb2.WithdrawAccessRequestRequest(name=name, reason=reason)
        return self._call(self.exchange.WithdrawAccessRequest, request).access_request

    # -- grants ------------------------------------------------------------------------------

    def grants(
        self, direction: str = "OUTGOING", *, state: int | str = 0, dataset: str = "",
    ) -> Iterator[exchange_pb2.Grant]:
        """Grants the caller holds (OUTGOING) or has given (INCOMING), newest first; `dataset`
        (a bare id means one of this agency's) keeps those on that dataset."""
        request = exchange_pb2.ListGrantsRequest(
            parent=self.name, direction=_direction(direction),
            state=enum_value(exchange_pb2.GrantState, state),
            dataset=self.dataset_name(dataset) if dataset else "")
        return self._pages(self.exchange.ListGrants, request, "grants")

    def verify_grant(self, grant: exchange_pb2.Grant) -> exchange_pb2.GrantStatement | None:
        """With a network configuration held, the grant's signed statement, once it verifies
        with the signing certificate of the member that signed it (its key id picks it among
        the members' current and previous ones; a previous one for a grant signed before its
        retirement), that member is the one the grant names (`network_member`, or this
        client's own for a local grant) and the one homing the dataset's owner, and the
        statement says what the grant says; VerificationError otherwise. None with no
        configuration held: a standalone gateway's grant is taken as given."""
        envelope = grant.signed_statement
        signer = self._signing_member(envelope, "grant")
        if signer is None:
            return None
        member = signer.member
        try:
            envelopes.check_sealed(envelope, signer.key, envelopes.GRANT)
        except signing.SignatureError:
            raise errors.VerificationError(
                f"the grant {grant.name} does not verify with the signing certificate of"
                f" {member.id}") from None
        statement = exchange_pb2.GrantStatement.FromString(envelope.payload)
        signer.check_time(statement.create_time, "grant")
        holder = grant.network_member or self.network_member().id  # type: ignore[union-attr]
        said = (statement.grant, statement.grantee, statement.owner, statement.dataset,
                statement.access_request, list(statement.fields), member.id)
        shown = (grant.name, grant.grantee, grant.owner, grant.dataset, grant.access_request,
                 list(grant.fields), holder)
        if said != shown:
            raise errors.VerificationError(
                f"the grant {grant.name} does not say what the statement {member.id} signed"
                " says, or was not given by the member it names")
        self._check_home(signer, statement.owner, "grant")
        return statement

    def revoke(self, grant: str, reason: str) -> exchange_pb2.Grant:
        request = exchange_pb2.RevokeGrantRequest(name=grant, reason=reason)
        return self._call(self.exchange.RevokeGrant, request).grant

    # -- fetching ----------------------------------------------------------------------------

    def fetch(self, dataset: str, to: str | os.PathLike, *,
              progress: Progress | None = None) -> Fetched:
        """Fetch a dataset (latest version) or a version into file `to`, verified end to end;
        resumes a fetch of the same dataset to the same target that broke off."""
        target = Path(to)
        part = target.with_name(target.name + ".part")
        marker = target.with_name(target.name + ".part.exchange")
        exchange = _resumable(part, marker, dataset)
        offset = part.stat().st_size if exchange else 0
        request = exchange_pb2.FetchDatasetRequest(dataset=dataset, offset=offset,
                                                   exchange=exchange)
        self._check_member()
        responses = self.exchange.FetchDataset(request)
        try:
            fetched = self._receive(responses, dataset, part, marker, offset, progress)
            _check_columns(part, fetched[0], list(fetched[1].fields))
        except (errors.VerificationError, errors.DataLoss) as exc:
            responses.cancel()
            _discard(part, marker)
            if offset and isinstance(exc, errors.VerificationError):
                # The bytes kept on this side are hashed too, and may be what changed.
                raise errors.VerificationError(
                    f"{exc.message}. The fetch resumed after the {offset} bytes kept in {part}:"
                    " that partial file is discarded, so fetching again starts anew") from None
            raise
        except errors.GovshareError as exc:
            responses.cancel()
            if not exchange or not _not_resumable(exc):
                raise
            # The bytes kept cannot be resumed (the exchange completed without its receipt
            # arriving, is unknown, delivers something else, or is shorter than them): fetch
            # anew, once (the retry resumes nothing).
            _discard(part, marker)
            return self.fetch(dataset, to, progress=progress)
        except BaseException:
            responses.cancel()
            raise
        os.replace(part, target)
        marker.unlink(missing_ok=True)
        return Fetched(target, fetched[0], fetched[1], fetched[2])

    def _receive(
        self, responses: Any, dataset: str, part: Path, marker: Path, offset: int,
        progress: Progress | None,
    ) -> tuple[catalog_pb2.Manifest, exchange_pb2.Receipt, envelope_pb2.Envelope]:
        stream = self._checked(responses)
        first = next(stream, None)
        if first is None or first.WhichOneof("part") != "start":
            raise errors.VerificationError("the fetch did not begin with a FetchStart")
        start = first.start
        manifest = self._verified_manifest(start, dataset)
        metadata = responses.initial_metadata()
        if start.fields:
            self._check_projected_fields(start, manifest)
        marker.write_text(f"{start.exchange}\n{dataset}\n")
        hasher = _resume(part, offset)  # truncates what follows the offset first
        most = (columns.projected_bound(manifest.content_size, manifest.row_count, start.fields)
                if start.fields else manifest.content_size)
        expected = None if start.fields else manifest.content_size - hasher.size
        fd = os.open(part, os.O_RDWR | os.O_CREAT, PART_MODE)
        os.fchmod(fd, PART_MODE)  # a partial file an older SDK left readable to all
        with Spool(open_direct(fd, hasher.size, expected), hasher, expected=expected) as spool:
            for message in stream:
                if message.WhichOneof("part") == "receipt":
                    key = self._gateway_key(metadata)  # the certificate presented, as before
                    signer = self._signing_member(message.receipt, "receipt")
                    receipt = _check_receipt(message.receipt, signer.key if signer else key,
                                             start, manifest, spool.finish(), self.name)
                    if signer is not None:
                        signer.check_time(receipt.complete_time, "receipt")
                        self._check_carriers(list(receipt.carriers), signer.member)
                        self._check_home(signer, receipt.owner, "receipt")
                    return manifest, receipt, message.receipt
                spool.write(message.chunk)
                if spool.size > most:
                    raise errors.VerificationError(
                        f"the gateway sent more bytes than the content can take ({most})")
                if progress is not None:
                    progress(spool.size, manifest.content_size)
        raise errors.VerificationError("the fetch ended without a receipt")

    def _checked(self, responses: Any) -> Iterator[Any]:
        try:
            yield from responses
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc) from None

    def _verified_manifest(self, start: exchange_pb2.FetchStart, dataset: str) -> Any:
        version = VersionName.match(start.dataset_version)
        if version is None:
            raise errors.VerificationError(
                f"the gateway delivered {start.dataset_version!r}, which names no version")
        certificate = signer_certificate(self.agency(str(version.dataset.owner)),
                                         start.signed_manifest)
        manifest = verify_signed_manifest(start.signed_manifest, certificate,
                                          (self.certs / "ca.pem").read_bytes())
        self._check_not_revoked(load_certificate(certificate, "the publisher's signing"
                                                 " certificate"),
                                "the publisher's signing certificate that signed the manifest")
        delivered = str(DatasetName.parse(manifest.dataset).version(manifest.version))
        if delivered != start.dataset_version or dataset not in (manifest.dataset, delivered):
            raise errors.VerificationError(
                f"the manifest is for {delivered}, but {start.dataset_version} was delivered"
                f" for {dataset}")
        return manifest

    def _check_projected_fields(self, start: exchange_pb2.FetchStart,
                                manifest: catalog_pb2.Manifest) -> None:
        """A projection must carry exactly the fields the grant names that the schema holds,
        in schema order; only a grant naming fields is served one."""
        grant = next((g for g in self.grants(dataset=manifest.dataset) if g.name == start.grant),
                     None)
        if grant is None:
            raise errors.VerificationError(f"the fetch ran under {start.grant}, which is not one"
                                           " of your grants")
        schema = [field.name for field in manifest.schema]
        granted = [name for name in schema if name in grant.fields]
        if list(start.fields) != granted or not grant.fields:
            raise errors.VerificationError(
                f"the gateway delivers the fields {', '.join(start.fields)}, but {grant.name}"
                f" gives {', '.join(granted) or 'the whole dataset'} of {manifest.dataset}")

    def _gateway_key(self, metadata: Any) -> signing.VerifyKey:
        """The receipt key with no network configuration held: the signing certificate of the
        gateway that signed it, sent in the stream's metadata (a relay passes on the owner's
        gateway's), checked against the CA and the CRL. With one held the certificate is still
        checked so, and the key of the member the signature's key id picks verifies instead."""
        pem = dict(metadata or ()).get(envelopes.GATEWAY_CERTIFICATE_KEY)
        if not pem:
            raise errors.VerificationError("the gateway sent no signing certificate")
        certificate = load_certificate(pem, "the gateway's signing certificate")
        ca = load_certificate((self.certs / "ca.pem").read_bytes(), "ca.pem of this agency")
        try:
            certs_ca.verify_chain(certificate, ca)
            identity = identity_from_certificate(certificate)
        except (certs_ca.CAError, ValueError) as exc:
            raise errors.VerificationError(f"the gateway's signing certificate is not valid:"
                                           f" {exc}") from None
        if identity.kind != "gateway":
            raise errors.VerificationError(
                f"the receipt certificate belongs to {identity.uri}, not to a gateway")
        self._check_not_revoked(certificate, "the gateway's signing certificate that signs"
                                " the receipt")
        try:
            return signing.VerifyKey.from_certificate(certificate)
        except ValueError as exc:  # not an Ed25519 key
            raise errors.VerificationError(f"the gateway's signing certificate is not a"
                                           f" signing certificate: {exc}") from None

    def fetches(self, dataset: str = "") -> Iterator[FetchRecord]:
        """Who fetched this agency's datasets (or `dataset`), oldest first: the completed
        fetches the audit log records."""
        events = (self.audit_events(dataset=self.dataset_name(dataset), action=FETCH_COMPLETE)
                  if dataset else self.audit_events(agency=self.name, action=FETCH_COMPLETE))
        for event in events:
            version = next(filter(None, map(VersionName.match, event.resources)), None)
            if version is None or str(version.dataset.owner) != self.name:
                continue  # a fetch this agency made of another agency's dataset
            exchange = next(filter(None, map(ExchangeName.match, event.resources)))
            yield FetchRecord(str(exchange), str(exchange.parent), str(version),
                              times.from_timestamp(event.create_time), event)

    # -- events ------------------------------------------------------------------------------

    def watch(self, cursor: str = "", follow: Iterable[str] = ()) -> Iterator[exchange_pb2.Event]:
        """Events that concern this agency, in order, from after `cursor` (or from now); the
        stream ends when the caller closes the iterator."""
        request = exchange_pb2.WatchEventsRequest(parent=self.name, cursor=cursor,
                                                  follow=list(follow))
        self._check_member()
        responses = self.exchange.WatchEvents(request)
        try:
            for response in self._checked(responses):
                yield response.event
        finally:
            responses.cancel()


def _resumable(part: Path, marker: Path, dataset: str) -> str:
    """The exchange a broken-off fetch of `dataset` left in `part`, or "" (a fetch of another
    dataset to the same target, or none, is not resumed: its leftovers are dropped)."""
    if not (marker.exists() and part.exists()):
        return ""
    exchange, _, marked = marker.read_text().strip().partition("\n")
    if marked.strip() == dataset:
        return exchange.strip()
    _discard(part, marker)
    return ""


def _discard(part: Path, marker: Path) -> None:
    part.unlink(missing_ok=True)
    marker.unlink(missing_ok=True)


_NOT_RESUMABLE = {"EXCHANGE_COMPLETED", "OFFSET_OUT_OF_RANGE", "NOT_A_PARTY",
                  "EXCHANGE_FIELDS_CHANGED"}


def _not_resumable(exc: errors.GovshareError) -> bool:
    """Whether the gateway refused to resume the exchange named (rather than the fetch)."""
    return (exc.reason in _NOT_RESUMABLE or exc.code == grpc.StatusCode.OUT_OF_RANGE
            or isinstance(exc, (errors.InvalidArgument, errors.NotFound)))


def _resume(part: Path, offset: int) -> signing.StreamHasher:
    """A hasher over the first `offset` bytes already in `part` (truncating anything after)."""
    hasher = signing.StreamHasher()
    if not offset:
        os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PART_MODE))
        return hasher
    with part.open("r+b") as handle:
        handle.truncate(offset)
        while block := handle.read(1024 * 1024):
            hasher.update(block)
    return hasher


def _check_receipt(
    envelope: envelope_pb2.Envelope, key: signing.VerifyKey, start: exchange_pb2.FetchStart,
    manifest: catalog_pb2.Manifest, hasher: signing.StreamHasher, requester: str,
) -> exchange_pb2.Receipt:
    """The receipt, after its signature and every field it binds have been checked."""
    try:
        envelopes.check_sealed(envelope, key, envelopes.RECEIPT)
    except signing.SignatureError:
        raise errors.VerificationError(
            "the receipt is not signed by the gateway's key, or its signature does not verify"
        ) from None
    receipt = exchange_pb2.Receipt.FromString(envelope.payload)
    received = hasher.digest()
    whole = not start.fields
    checks = {
        "content SHA-256 (manifest)": not whole or received == manifest.content_sha256,
        "content size (manifest)": not whole or hasher.size == manifest.content_size,
        "content SHA-256 (receipt)": receipt.content_sha256 == manifest.content_sha256,
        "content size (receipt)": receipt.content_size == manifest.content_size,
        "delivered SHA-256 (receipt)": receipt.delivered_sha256 == received,
        "delivered size (receipt)": receipt.delivered_size == hasher.size,
        "fields (receipt)": list(receipt.fields) == list(start.fields),
        "exchange": receipt.exchange == start.exchange,
        "requester": receipt.requester == requester,
        "owner": str(DatasetName.parse(manifest.dataset).owner) == receipt.owner,
        "dataset version": receipt.dataset_version == start.dataset_version,
        "grant": receipt.grant == start.grant,
    }
    failed = [what for what, ok in checks.items() if not ok]
    if failed:
        raise errors.VerificationError(f"the fetched data failed verification: {', '.join(failed)}"
                                       " does not match")
    return receipt


def _check_columns(path: Path, manifest: catalog_pb2.Manifest, fields: list[str]) -> None:
    """A projection received into `path` holds exactly `fields`, whose column digests and row
    count are the ones the publisher signed (nothing to do for the whole content)."""
    if not fields:
        return
    try:
        with path.open("rb") as handle:
            found = columns.scan(iter(lambda: handle.read(1024 * 1024), b""),
                                 manifest.media_type, fields, exact=True)
    except columns.ColumnError as exc:
        raise errors.VerificationError(f"the projection received does not parse: {exc}") \
            from None
    if found != columns.signed_columns(manifest, fields):
        raise errors.VerificationError(
            f"the fields {', '.join(fields)} received do not match the column digests and row"
            " count the publisher signed")
