"""Signed statements on the wire: payload types, DSSE envelopes sealed and checked, envelope
ids. The gateway and the SDK both seal and check with these; the gateway's own checklist
for statements agencies send (signer registered, is the caller, certificate valid) is
gateway.statements."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError, Message

from gateway.v1 import catalog_pb2, envelope_pb2, exchange_pb2, network_pb2
from govshare import errors, signing

MANIFEST = "application/vnd.govshare.manifest.v1+proto"
ACCESS_REQUEST = "application/vnd.govshare.access-request.v1+proto"
DECISION = "application/vnd.govshare.decision.v1+proto"
GRANT = "application/vnd.govshare.grant.v1+proto"
RECEIPT = "application/vnd.govshare.receipt.v1+proto"
NETWORK_CONFIGURATION = "application/vnd.govshare.network-configuration.v1+proto"

GATEWAY_CERTIFICATE_KEY = "govshare-gateway-signing-certificate-bin"
"""Initial-metadata key of FetchDataset carrying the gateway's CA-issued signing certificate, with
which the SDK checks receipts."""

PAYLOAD_TYPES: dict[str, type[Message]] = {
    MANIFEST: catalog_pb2.Manifest,
    ACCESS_REQUEST: exchange_pb2.AccessRequestStatement,
    DECISION: exchange_pb2.DecisionStatement,
    GRANT: exchange_pb2.GrantStatement,
    RECEIPT: exchange_pb2.Receipt,
    NETWORK_CONFIGURATION: network_pb2.NetworkConfiguration,
}

ALGORITHMS = {envelope_pb2.SIGNATURE_ALGORITHM_ED25519: signing.ED25519}


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


def claimed(envelope: envelope_pb2.Envelope, payload_type: str) -> Any | None:
    """The `payload_type` statement an envelope carries, decoded WITHOUT any check (None if it
    is of another type or does not decode): only to name, in the audit event of a refused call,
    what the call claimed to be about; never to decide anything."""
    if envelope.payload_type != payload_type:
        return None
    statement = PAYLOAD_TYPES[payload_type]()
    try:
        statement.ParseFromString(envelope.payload)
    except DecodeError:
        return None
    return statement


def decode(envelope: envelope_pb2.Envelope, payload_type: str, field: str) -> Any:
    """The statement in an envelope's payload (after its signature has been checked)."""
    statement = PAYLOAD_TYPES[payload_type]()
    try:
        statement.ParseFromString(envelope.payload)
    except DecodeError as exc:
        raise errors.InvalidArgument(f"{field}.payload is not a valid statement",
                                     field=f"{field}.payload") from exc
    return statement
