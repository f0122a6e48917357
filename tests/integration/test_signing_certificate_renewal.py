"""An agency's signing certificate replaced (a renewal, a lost key): the new one signs from then
on, the old one signs nothing more, and what it signed before still verifies end to end."""

from __future__ import annotations

import grpc
import pytest

from agencies import errors
from agencies.client import AgencyClient
from certs.ca import CertificateAuthority
from tests.support.exchange import (
    ask,
    assert_only_refusal,
    counts,
    last_leaf,
    publish,
)


@pytest.fixture
def renewal(network, tmp_path):
    """A second bundle the CA issued to gd-health: its new signing certificate and key."""
    folder = tmp_path / "gd-health-renewed"
    CertificateAuthority.open(network.layout.ca_folder).issue_agency("gd-health", folder)
    return folder


def test_the_new_certificate_signs_and_the_old_ones_manifests_still_verify(
        network, renewal, tmp_path):
    health, market, admin = network.agency("gd-health"), network.agency("sz-market"), \
        network.admin()
    beds = publish(health, "hospital-beds", b"region,beds\n1,2\n")
    ask(market, beds)
    old_pem = (network.layout.certs("gd-health") / "signing.pem").read_text()
    old_key_id = admin.agency("gd-health").signing_key_id
    new_pem = (renewal / "signing.pem").read_text()

    agency = admin.replace_signing_certificate("gd-health", new_pem, "renewal before expiry")

    event = last_leaf(network)  # audited with both key ids
    assert (event["action"], event["outcome"]) == ("directory.signing_certificate.replace",
                                                   "ALLOWED")
    assert "renewal before expiry" in event["record"]
    assert agency.signing_key_id in event["record"]
    assert agency.signing_certificate_pem == new_pem
    [retired] = agency.previous_signing_certificates
    assert (retired.certificate_pem, retired.key_id) == (old_pem, old_key_id)
    assert market.agency("gd-health").signing_key_id == agency.signing_key_id
    # The old key signs nothing more.
    before = counts(network)
    with pytest.raises(errors.PermissionDenied) as refused:
        publish(health, "hospital-beds", b"region,beds\n1,3\n")
    assert refused.value.reason == "SIGNER_UNKNOWN"
    assert_only_refusal(network, before, "catalog.publish", "SIGNER_UNKNOWN")
    # The new key does, with the agency's TLS identity unchanged.
    renewed = AgencyClient(network.target, renewal, server_name="localhost")
    network.clients.append(renewed)
    publish(renewed, "hospital-beds", b"region,beds\n1,3\n")
    # Both versions verify for the agency fetching them, each with the key that signed it.
    first = market.fetch(f"{beds}/versions/1", tmp_path / "v1.csv")
    latest = market.fetch(beds, tmp_path / "v2.csv")
    assert (first.manifest.version, latest.manifest.version) == (1, 2)
    assert (tmp_path / "v1.csv").read_bytes() == b"region,beds\n1,2\n"
    for version in market.versions(beds):
        market.verify_manifest(version)


@pytest.mark.parametrize(("case", "code", "reason", "says"), [
    ("unchanged", grpc.StatusCode.FAILED_PRECONDITION, "CERTIFICATE_UNCHANGED",
     "this is already the signing certificate of agency gd-health"),
    ("unchanged, other line ends", grpc.StatusCode.FAILED_PRECONDITION, "CERTIFICATE_UNCHANGED",
     "this is already the signing certificate of agency gd-health"),
    ("another agency's", grpc.StatusCode.INVALID_ARGUMENT, "CERTIFICATE_IDENTITY_MISMATCH",
     "issued to urn:govshare:agency:sz-market, not to agency gd-health"),
    ("not a certificate", grpc.StatusCode.INVALID_ARGUMENT, "CERTIFICATE_INVALID",
     "must be an Ed25519 certificate issued by the national CA"),
    ("no reason", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "reason is required"),
    ("unregistered agency", grpc.StatusCode.NOT_FOUND, "NOT_FOUND",
     "agency hn-water is not registered"),
])
def test_refusals(network, renewal, tmp_path, case, code, reason, says):
    admin = network.admin()
    certs = network.layout.certs
    name, pem, why = "gd-health", (renewal / "signing.pem").read_text(), "renewal"
    if case == "unchanged":
        pem = (certs("gd-health") / "signing.pem").read_text()
    elif case == "unchanged, other line ends":
        pem = (certs("gd-health") / "signing.pem").read_text().replace("\n", "\r\n")
    elif case == "another agency's":
        pem = (certs("sz-market") / "signing.pem").read_text()
    elif case == "not a certificate":
        pem = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    elif case == "no reason":
        why = "  "
    elif case == "unregistered agency":
        folder = tmp_path / "hn-water"
        CertificateAuthority.open(network.layout.ca_folder).issue_agency("hn-water", folder)
        name, pem = "hn-water", (folder / "signing.pem").read_text()
    before = counts(network)

    with pytest.raises(errors.GovshareError) as refused:
        admin.replace_signing_certificate(name, pem, why)

    assert (refused.value.code, refused.value.reason) == (code, reason)
    assert says in refused.value.message
    assert_only_refusal(network, before, "directory.signing_certificate.replace", reason)
    agency = admin.agency("gd-health")
    assert agency.signing_certificate_pem == (certs("gd-health") / "signing.pem").read_text()
    assert not agency.previous_signing_certificates

