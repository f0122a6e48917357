"""Signed statements: envelopes checked as a numbered list that stops at the first failure.

Every statement an agency signs (manifest, access request, decision) is opened here, so the
checks are the same everywhere: known payload type, supported algorithm, a signer registered in
the directory, the signer is the caller, the signing certificate is not revoked, the signature
verifies over the exact bytes, and only then are the bytes decoded.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography import x509
from google.protobuf.message import DecodeError, Message

from gateway import errors, signing
from gateway.identity import Caller
from gateway.v1 import catalog_pb2, envelope_pb2, exchange_pb2

if TYPE_CHECKING:
    from gateway.server import Gateway

MANIFEST = "application/vnd.govshare.manifest.v1+proto"
ACCESS_REQUEST = "application/vnd.govshare.access-request.v1+proto"
DECISION = "application/vnd.govshare.decision.v1+proto"
GRANT = "application/vnd.govshare.grant.v1+proto"
RECEIPT = "application/vnd.govshare.receipt.v1+proto"

GATEWAY_CERTIFICATE_KEY = "govshare-gateway-signing-certificate-bin"
"""Initial-metadata key of FetchDataset carrying the gateway's CA-issued signing certificate, with
which the SDK checks receipts."""

PAYLOAD_TYPES: dict[str, type[Message]] = {
    MANIFEST: catalog_pb2.Manifest,
    ACCESS_REQUEST: exchange_pb2.AccessRequestStatement,
    DECISION: exchange_pb2.DecisionStatement,
    GRANT: exchange_pb2.GrantStatement,
    RECEIPT: exchange_pb2.Receipt,
}

M = TypeVar("M", bound=Message)

_ALGORITHMS = {envelope_pb2.SIGNATURE_ALGORITHM_ED25519: signing.ED25519}


def envelope_id(envelope: envelope_pb2.Envelope) -> str:
    """The id of a statement: hex SHA-256 of its payload bytes."""
    return signing.sha256(envelope.payload).hex()


def seal(key: signing.SigningKey, payload_type: str, statement: Message) -> envelope_pb2.Envelope:
    """Serialise `statement` once and sign it (used by the gateway and the SDK alike)."""
    payload = statement.SerializeToString(deterministic=True)
    key_id, signature = signing.sign_envelope(key, payload_type, payload)
    return envelope_pb2.Envelope(
        payload_type=payload_type,
        payload=payload,
        signatures=[envelope_pb2.Signature(
            algorithm=envelope_pb2.SIGNATURE_ALGORITHM_ED25519, key_id=key_id,
            signature=signature,
        )],
    )


def check_sealed(
    envelope: envelope_pb2.Envelope, key: signing.VerifyKey, payload_type: str
) -> None:
    """Raise signing.SignatureError unless `envelope` is a `payload_type` statement carrying one
    Ed25519 signature by `key` that verifies over its exact bytes (the SDK's check of what the
    gateway or a publisher signed)."""
    if (envelope.payload_type != payload_type or len(envelope.signatures) != 1
            or envelope.signatures[0].algorithm != envelope_pb2.SIGNATURE_ALGORITHM_ED25519
            or envelope.signatures[0].key_id != key.key_id):
        raise signing.SignatureError()
    signing.verify_envelope(key, envelope.payload_type, envelope.payload,
                            envelope.signatures[0].signature)


def open_signed(
    gateway: Gateway, caller: Caller, envelope: envelope_pb2.Envelope, payload_type: str,
    field: str,
) -> Any:
    """Verify an agency-signed envelope from `caller` and return its decoded statement.

    1. the envelope is present and of the expected payload type;
    2. it carries exactly one signature, with a supported algorithm;
    3. the key id belongs to an agency registered in the directory;
    4. that agency is the caller (PERMISSION_DENIED otherwise);
    5. its signing certificate is not revoked;
    6. the signature verifies over the exact bytes (PERMISSION_DENIED otherwise);
    7. the bytes decode as the statement.
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
    algorithm = _ALGORITHMS.get(signature.algorithm)
    if algorithm is None:
        raise errors.InvalidArgument(
            f"{field} signature algorithm is not supported (use SIGNATURE_ALGORITHM_ED25519)",
            reason="ALGORITHM_UNSUPPORTED", field=f"{field}.signatures.algorithm",
        )
    signer = gateway.directory.by_key_id(signature.key_id)
    if signer is None:
        raise errors.PermissionDenied(
            f"{field} is signed by a key no registered agency holds",
            reason="SIGNER_UNKNOWN", field=field,
        )
    if caller.kind != "agency" or signer["id"] != caller.identity.id:
        raise errors.PermissionDenied(
            f"{field} is signed by agency {signer['id']}, but the caller is {caller.uri}:"
            " sign with your own signing key",
            reason="SIGNER_NOT_CALLER", field=field,
        )
    serial, key = _signing_key(signer["signing_certificate_pem"])
    if gateway.authenticator.revoked_serial(serial):
        raise errors.PermissionDenied(
            f"the signing certificate of agency {signer['id']} has been revoked",
            reason="SIGNING_CERTIFICATE_REVOKED", field=field,
        )
    try:
        signing.verify_envelope(key, envelope.payload_type, envelope.payload,
                                signature.signature)
    except signing.SignatureError as exc:
        raise errors.PermissionDenied(
            f"{field} signature does not verify with the signer's registered certificate",
            reason="SIGNATURE_INVALID", field=field,
        ) from exc
    return decode(envelope, payload_type, field)


@functools.lru_cache(maxsize=4096)
def _signing_key(certificate_pem: str) -> tuple[int, signing.VerifyKey]:
    """(serial, public key) of a registered signing certificate, parsed once."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return certificate.serial_number, signing.VerifyKey.from_certificate(certificate)


def decode(envelope: envelope_pb2.Envelope, payload_type: str, field: str) -> Any:
    """The statement in an envelope's payload (after its signature has been checked)."""
    statement = PAYLOAD_TYPES[payload_type]()
    try:
        statement.ParseFromString(envelope.payload)
    except DecodeError as exc:
        raise errors.InvalidArgument(f"{field}.payload is not a valid statement",
                                     field=f"{field}.payload") from exc
    return statement
