"""Signed statements: envelopes checked as a numbered list that stops at the first failure.

Every statement an agency signs (manifest, access request, decision) is opened here, so the
checks are the same everywhere: known payload type, supported algorithm, a signer registered in
the directory, the signer is the caller, the signing certificate is within its validity and not
revoked, the signature verifies over the exact bytes, and only then are the bytes decoded.

An agency homed at another member, for whom that member's gateway calls (`Call.via`), signs
with a certificate this gateway knows from its replica of that member's directory: the current
one, or one the agency retired, for a statement it says it signed before the retirement.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any, Protocol

from cryptography import x509

from gateway.context import Call
from gateway.identity import Authenticator
from gateway.models import Agency
from gateway.v1 import envelope_pb2
from govshare import envelopes, errors, signing, times


class Signers(Protocol):
    """The directory entries of registered agencies by signing key id (directory.DirectoryCache)."""

    def by_key_id(self, key_id: str) -> Agency | None:
        """The agency holding signing key `key_id`, None when none does."""


class StatementOpener:
    """Opens the statements agencies sign, against the directory and the national CA's CRL."""

    def __init__(self, signers: Signers, authenticator: Authenticator):
        self._signers = signers
        self._authenticator = authenticator

    def open_signed(
        self, call: Call, envelope: envelope_pb2.Envelope, payload_type: str, field: str,
    ) -> Any:
        """Verify an agency-signed envelope from the caller of `call` and return its decoded
        statement.

        1. the envelope is present and of the expected payload type;
        2. it carries exactly one signature, with a supported algorithm;
        3. the key id belongs to an agency registered in the directory (for an agency its home
           gateway speaks for: is one of that agency's keys, current or retired, as replicated);
        4. that agency is the caller (PERMISSION_DENIED otherwise);
        5. its signing certificate is within its validity and not revoked (PERMISSION_DENIED);
        6. the signature verifies over the exact bytes (PERMISSION_DENIED otherwise);
        7. the bytes decode as the statement;
        8. a statement signed with a retired key says it was signed before the retirement.
        """
        if not envelope.payload:
            raise errors.InvalidArgument(f"{field} is required", field=field)
        if envelope.payload_type != payload_type:
            raise errors.InvalidArgument(
                f"{field}.payload_type must be {payload_type}", field=f"{field}.payload_type"
            )
        if len(envelope.signatures) != 1:
            raise errors.InvalidArgument(f"{field} must carry exactly one signature",
                                         field=f"{field}.signatures")
        signature = envelope.signatures[0]
        algorithm = envelopes.ALGORITHMS.get(signature.algorithm)
        if algorithm is None:
            raise errors.InvalidArgument(
                f"{field} signature algorithm is not supported (use SIGNATURE_ALGORITHM_ED25519)",
                reason="ALGORITHM_UNSUPPORTED", field=f"{field}.signatures.algorithm",
            )
        signer, pem, retired = self._signer(call, signature.key_id)
        caller = call.caller
        if signer is None and call.via is not None:
            raise errors.PermissionDenied(
                f"{field} is not signed with a signing key of {caller.agency_name}, as its home"
                f" gateway {call.via.identity.id} lists them: sign with your own signing key",
                reason="SIGNER_NOT_CALLER", field=field,
            )
        if signer is None:
            raise errors.PermissionDenied(
                f"{field} is signed by a key no registered agency holds",
                reason="SIGNER_UNKNOWN", field=field,
            )
        if caller.kind != "agency" or signer.id != caller.identity.id:
            raise errors.PermissionDenied(
                f"{field} is signed by agency {signer.id}, but the caller is {caller.uri}:"
                " sign with your own signing key",
                reason="SIGNER_NOT_CALLER", field=field,
            )
        certificate, key = _registered(pem)
        self.check_signing_certificate(signer.id, certificate, errors.PermissionDenied, field,
                                       call.time)
        try:
            signing.verify_envelope(key, envelope.payload_type, envelope.payload,
                                    signature.signature)
        except signing.SignatureError as exc:
            raise errors.PermissionDenied(
                f"{field} signature does not verify with the signer's registered certificate",
                reason="SIGNATURE_INVALID", field=field,
            ) from exc
        statement = envelopes.decode(envelope, payload_type, field)
        if retired:
            _check_signed_before(statement, retired, signer.id, field)
        return statement

    def _signer(self, call: Call, key_id: str) -> tuple[Agency | None, str, str]:
        """The agency holding signing key `key_id`, the certificate of that key (PEM) and, for
        a key the agency retired, when it did ("" for a current key): from the directory, or
        for an agency another member's gateway speaks for, from its replicated entry."""
        if call.via is None:
            signer = self._signers.by_key_id(key_id)
            return signer, signer.signing_certificate_pem if signer else "", ""
        agency = call.agency
        if agency is None:
            return None, "", ""
        pem, retired = _agency_key(agency, key_id)
        return (agency, pem, retired) if pem else (None, "", "")

    def open_passed_on(self, agency: Agency, envelope: envelope_pb2.Envelope,
                       payload_type: str, field: str) -> Any:
        """A statement `agency`, homed at another member, signed earlier and that member
        passes on (an owner's decision): one Ed25519 signature by one of its keys as
        replicated (a retired one only for what it says it signed before the retirement),
        whose certificate was valid when the statement says it was signed and is not
        revoked. errors.PermissionDenied (or InvalidArgument) otherwise."""
        key_id = envelope.signatures[0].key_id if len(envelope.signatures) == 1 else ""
        pem, retired = _agency_key(agency, key_id)
        if not pem:
            raise errors.PermissionDenied(
                f"{field} is not signed with a signing key of agency {agency.id}",
                reason="SIGNER_NOT_OWNER", field=field)
        certificate, key = _registered(pem)
        try:
            envelopes.check_sealed(envelope, key, payload_type)
        except signing.SignatureError:
            raise errors.PermissionDenied(
                f"{field} does not verify with the signing certificate of agency {agency.id}",
                reason="SIGNATURE_INVALID", field=field) from None
        statement = envelopes.decode(envelope, payload_type, field)
        signed = times.from_timestamp(statement.create_time, f"{field}.create_time")
        self.check_signing_certificate(agency.id, certificate, errors.PermissionDenied, field,
                                       signed)
        if retired:
            _check_signed_before(statement, retired, agency.id, field)
        return statement

    def check_signing_certificate(
        self, agency_id: str, certificate: x509.Certificate,
        refusal: type[errors.GatewayError], field: str, now: datetime,
    ) -> None:
        """Raise `refusal` unless `certificate`, agency_id's signing certificate, may sign at
        `now`: it is within its validity and the CA has not revoked it."""
        renew = "the national CA must issue a new one and an administrator register it"
        if now > certificate.not_valid_after_utc:
            raise refusal(f"the signing certificate of agency {agency_id} expired at"
                          f" {certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC: {renew}",
                          reason="SIGNING_CERTIFICATE_EXPIRED", field=field)
        if now < certificate.not_valid_before_utc:
            raise refusal(f"the signing certificate of agency {agency_id} is not valid before"
                          f" {certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC: wait until"
                          " then, or check the clocks of the gateway and the CA",
                          reason="SIGNING_CERTIFICATE_NOT_YET_VALID", field=field)
        if self._authenticator.revoked(certificate):
            raise refusal(f"the signing certificate of agency {agency_id} has been revoked:"
                          f" {renew}", reason="SIGNING_CERTIFICATE_REVOKED", field=field)


def _agency_key(agency: Agency, key_id: str) -> tuple[str, str]:
    """The certificate (PEM) of `agency`'s signing key `key_id` and, for a key it retired,
    when ("" for its current key); ("", "") when it holds no such key."""
    if agency.signing_key_id == key_id:
        return agency.signing_certificate_pem, ""
    for retired in json.loads(agency.previous_signing_certificates):
        if retired["key_id"] == key_id:
            return retired["certificate_pem"], retired["retire_time"]
    return "", ""


def _check_signed_before(statement: Any, retire_time: str, agency_id: str, field: str) -> None:
    """A statement signed with a retired key must say it was signed before the retirement."""
    signed = times.from_timestamp(statement.create_time, f"{field}.create_time")
    if signed >= times.from_text(retire_time):
        raise errors.PermissionDenied(
            f"{field} is signed with a key agency {agency_id} retired at {retire_time}, but says"
            " it was signed after that: sign with the agency's current key",
            reason="SIGNING_KEY_RETIRED", field=field)


@functools.lru_cache(maxsize=4096)
def _registered(certificate_pem: str) -> tuple[x509.Certificate, signing.VerifyKey]:
    """A registered signing certificate and its public key, parsed once."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return certificate, signing.VerifyKey.from_certificate(certificate)


