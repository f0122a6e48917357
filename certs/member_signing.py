"""A member gateway's signing certificates across a renewal: its current one, and those it had
before (`MemberGateway.previous_signing_certificates`, each with the time it was replaced), so
that the grants and receipts it signed before a renewal still verify after the configuration
names the new certificate.

Why a list in the configuration, rather than the certificate of the configuration held when a
statement was signed: gateways and SDKs hold one configuration, not its history (a gateway
restarted, or an SDK first started, after the renewal never saw the old one), and a list
signed by the authority says the same to every holder. It is the agencies' rule
(`directory.RetiredSigningCertificate`): a previous certificate verifies only what says it was
signed before its retire_time and within its validity, so a key stolen after its retirement
cannot sign anything new that is taken.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from cryptography import x509
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.v1 import directory_pb2, envelope_pb2, network_pb2
from govshare import envelopes, errors, signing, times

from .ca import CAError, verify_chain
from .identity import Identity, identity_from_certificate

MAX_PREVIOUS = 8
"""The most previous signing certificates a member may list: renewals are rare, and each is
parsed by every receiver."""


class _Signed(Protocol):
    def ParseFromString(self, data: bytes) -> object: ...


Statement = TypeVar("Statement", bound=_Signed)


def certificates(member: network_pb2.MemberGateway
                 ) -> Iterator[tuple[str, datetime | None]]:
    """The member's signing certificates (PEM) and for each previous one its retire_time
    (None for the current one), the current one first."""
    yield member.signing_certificate_pem, None
    for previous in reversed(member.previous_signing_certificates):
        yield previous.certificate_pem, previous.retire_time.ToDatetime(tzinfo=UTC)


def key_ids(member: network_pb2.MemberGateway) -> Iterator[str]:
    """The key ids of the member's signing certificates, current and previous."""
    for pem, _ in certificates(member):
        yield signing.VerifyKey.from_certificate(pem).key_id


def signing_certificate(member: network_pb2.MemberGateway,
                        key_id: str) -> tuple[x509.Certificate, datetime | None]:
    """The signing certificate of `member` holding key `key_id` and, for a previous one, its
    retire_time (None for the current one); ValueError when none holds it."""
    for pem, retired in certificates(member):
        certificate = x509.load_pem_x509_certificate(pem.encode())
        if signing.VerifyKey.from_certificate(certificate).key_id == key_id:
            return certificate, retired
    raise ValueError(f"it is signed by no signing certificate of member {member.id}")


def check_signed_while_current(certificate: x509.Certificate, retired: datetime | None,
                               stamp: Timestamp) -> None:
    """ValueError unless a statement saying it was signed at `stamp` may have been signed with
    `certificate`, retired at `retired` (None: current, which the caller checks as of now):
    within its validity and before its retirement."""
    if retired is None:
        return
    try:
        signed = times.from_timestamp(stamp)
    except errors.InvalidArgument as exc:
        raise ValueError(exc.message) from None
    if not certificate.not_valid_before_utc <= signed < retired:
        raise ValueError(f"it is signed with a certificate retired at {times.to_text(retired)},"
                         f" but says it was signed at {times.to_text(signed)}")


def open_signed(member: network_pb2.MemberGateway, envelope: envelope_pb2.Envelope,
                payload_type: str, statement: type[Statement], time_field: str) -> Statement:
    """The `statement` (of `payload_type`) `member` signed in `envelope`: one Ed25519 signature
    by its current signing certificate, or by a previous one for a statement saying (its
    `time_field`) that it was signed before that certificate's retire_time and within its
    validity. signing.SignatureError or ValueError otherwise."""
    key_id = envelope.signatures[0].key_id if len(envelope.signatures) == 1 else ""
    certificate, retired = signing_certificate(member, key_id)
    envelopes.check_sealed(envelope, signing.VerifyKey.from_certificate(certificate),
                           payload_type)
    opened = statement()
    try:
        opened.ParseFromString(envelope.payload)
    except DecodeError:
        raise ValueError("its signed payload does not decode") from None
    check_signed_while_current(certificate, retired, getattr(opened, time_field))
    return opened


def check_previous(member: network_pb2.MemberGateway, field: str,
                   ca_certificate: x509.Certificate, crl: x509.CertificateRevocationList,
                   now: datetime) -> None:
    """ValueError unless each previous signing certificate of `member` is the national CA's,
    of that member, Ed25519, of the key id it names, not revoked by `crl`, and retired within
    its validity and before `now`; at most MAX_PREVIOUS of them."""
    previous = member.previous_signing_certificates
    if len(previous) > MAX_PREVIOUS:
        raise ValueError(f"{field}.previous_signing_certificates lists {len(previous)}, at most"
                         f" {MAX_PREVIOUS}: drop the oldest")
    for index, entry in enumerate(previous):
        _check_one(member, entry, f"{field}.previous_signing_certificates[{index}]",
                   ca_certificate, crl, now)


def _check_one(member: network_pb2.MemberGateway, entry: directory_pb2.RetiredSigningCertificate,
               where: str, ca_certificate: x509.Certificate,
               crl: x509.CertificateRevocationList, now: datetime) -> None:
    if not entry.HasField("retire_time"):
        raise ValueError(f"{where}.retire_time is required: when the certificate was replaced")
    retired = entry.retire_time.ToDatetime(tzinfo=UTC)
    if retired > now:
        raise ValueError(f"{where}.retire_time {times.to_text(retired)} is still to come: a"
                         " certificate is listed once it was replaced")
    try:
        certificate = x509.load_pem_x509_certificate(entry.certificate_pem.encode())
        # Checked as of its retirement: it may have expired since, and still verifies what it
        # signed while current.
        verify_chain(certificate, ca_certificate,
                     now=min(retired, certificate.not_valid_after_utc))
        key = signing.VerifyKey.from_certificate(certificate)
        identity = identity_from_certificate(certificate)
    except (ValueError, CAError) as exc:
        raise ValueError(f"{where} is not a signing certificate of the national CA valid when"
                         f" retired: {exc}") from None
    if identity != Identity("gateway", member.id):
        raise ValueError(f"{where} is of {identity.uri}, not of member {member.id!r}")
    if entry.key_id != key.key_id:
        raise ValueError(f"{where}.key_id is not the key id of its certificate, {key.key_id}")
    if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
        raise ValueError(f"{where} is revoked by the CRL the configuration carries: drop it,"
                         " so that nothing signed with it verifies")
