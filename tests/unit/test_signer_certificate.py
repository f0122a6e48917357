"""agencies.catalog.signer_certificate: which of an agency's certificates, current or retired,
verifies a manifest, by key id, validity at the manifest's create_time and retire time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from google.protobuf import timestamp_pb2

from agencies import errors
from agencies.catalog import signer_certificate
from gateway.v1 import catalog_pb2, directory_pb2
from govshare import envelopes, signing

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)


def certificate(key: Ed25519PrivateKey, start: datetime, end: datetime) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gd-health")])
    built = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(start).not_valid_after(end).sign(key, None))
    return built.public_bytes(serialization.Encoding.PEM).decode()


def key_id(pem: str) -> str:
    return signing.VerifyKey.from_certificate(
        x509.load_pem_x509_certificate(pem.encode())).key_id


def signed(key: Ed25519PrivateKey, when: datetime):
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(when)
    manifest = catalog_pb2.Manifest(dataset="agencies/gd-health/datasets/beds", version=1,
                                    create_time=created)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return envelopes.seal(signing.SigningKey.from_pem(pem), envelopes.MANIFEST, manifest)


def agency(current: str, *retired: tuple[str, datetime]) -> directory_pb2.Agency:
    found = directory_pb2.Agency(name="agencies/gd-health", signing_certificate_pem=current,
                                 signing_key_id=key_id(current))
    for pem, when in retired:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(when)
        found.previous_signing_certificates.add(certificate_pem=pem, key_id=key_id(pem),
                                                retire_time=stamp)
    return found


def test_a_renewal_of_the_same_key_verifies_each_manifest_with_the_certificate_of_its_time():
    key = Ed25519PrivateKey.generate()
    old = certificate(key, NOW - 800 * DAY, NOW - 10 * DAY)
    new = certificate(key, NOW - 11 * DAY, NOW + 800 * DAY)
    renewed = agency(new, (old, NOW - 11 * DAY))
    assert signer_certificate(renewed, signed(key, NOW - 100 * DAY)) == old
    assert signer_certificate(renewed, signed(key, NOW)) == new


def test_a_retired_key_verifies_what_it_signed_before_and_nothing_after():
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old = certificate(old_key, NOW - 800 * DAY, NOW + 30 * DAY)
    new = certificate(new_key, NOW - DAY, NOW + 800 * DAY)
    replaced = agency(new, (old, NOW - DAY))
    assert signer_certificate(replaced, signed(old_key, NOW - 2 * DAY)) == old
    assert signer_certificate(replaced, signed(new_key, NOW)) == new
    with pytest.raises(errors.VerificationError, match="stopped using at"):
        signer_certificate(replaced, signed(old_key, NOW))
