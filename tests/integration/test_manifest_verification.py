"""verify_signed_manifest: a manifest verifies under a signing certificate of the national CA that
was valid when the manifest was signed, and under nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agencies import errors
from agencies.catalog import verify_signed_manifest
from certs.ca import CertificateAuthority
from gateway.v1 import catalog_pb2
from govshare import envelopes, signing


def sealed(certs: Path, signed_at: datetime) -> object:
    """A manifest of gd-health's signed with the key in `certs`, created at `signed_at`."""
    manifest = catalog_pb2.Manifest(dataset="agencies/gd-health/datasets/beds", version=1,
                                    title="Beds")
    manifest.create_time.FromDatetime(signed_at)
    return envelopes.seal(signing.SigningKey.load(certs / "signing.key"), envelopes.MANIFEST,
                           manifest)


def test_a_directory_certificate_that_is_no_signing_certificate_fails_verification(network):
    certs = network.layout.certs("gd-health")
    envelope = sealed(certs, datetime.now(UTC))
    ca = (certs / "ca.pem").read_bytes()
    assert verify_signed_manifest(envelope, (certs / "signing.pem").read_bytes(), ca).title
    for certificate, says in (((certs / "tls.pem").read_bytes(), "not a signing certificate"),
                              (b"garbage", "not a PEM certificate")):
        with pytest.raises(errors.VerificationError, match=says):
            verify_signed_manifest(envelope, certificate, ca)
    with pytest.raises(errors.VerificationError, match="national CA certificate is not a PEM"):
        verify_signed_manifest(envelope, (certs / "signing.pem").read_bytes(), b"garbage")


def test_a_manifest_is_checked_against_its_certificate_at_its_create_time(tmp_path):
    """A certificate valid for one day, ten days ago: what it signed then still verifies."""
    now = datetime.now(UTC).replace(microsecond=0)
    ca = CertificateAuthority.init(tmp_path / "ca", now=now - timedelta(days=30))
    certs = tmp_path / "gd-health"
    ca.issue_agency("gd-health", certs, validity_days=1, now=now - timedelta(days=10))
    pem, root = (certs / "signing.pem").read_bytes(), ca.certificate_pem

    then = verify_signed_manifest(sealed(certs, now - timedelta(days=10, hours=-1)), pem, root)
    assert then.title == "Beds"
    with pytest.raises(errors.VerificationError, match="not valid when the manifest was signed"):
        verify_signed_manifest(sealed(certs, now - timedelta(days=5)), pem, root)
    fresh = tmp_path / "fresh"
    ca.issue_agency("gd-health", fresh)
    with pytest.raises(errors.VerificationError, match="later than now"):
        verify_signed_manifest(sealed(fresh, now + timedelta(hours=1)),
                               (fresh / "signing.pem").read_bytes(), root)
    assert verify_signed_manifest(sealed(fresh, now + timedelta(minutes=2)),
                                  (fresh / "signing.pem").read_bytes(), root).title
