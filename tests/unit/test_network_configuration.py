"""The signed network configuration (certs.network_configuration): what a receiver accepts, and
each refusal with the input an attacker or a mistaken operator would give it. Real CA, real
certificates, real Ed25519 signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certs import SIGNING_CERT, SIGNING_KEY, TLS_CERT, CertificateAuthority, member_signing
from certs import network_configuration as netconf
from gateway.v1 import exchange_pb2, network_pb2
from govshare import envelopes, errors, times
from govshare.signing import SigningKey, VerifyKey
from govshare.transparency.cosignature import CosignatureVerifier
from govshare.transparency.note import MAX_SIGNATURES, NoteVerifier
from tests.support.federation import NETWORK_ID, Federation

NOW = datetime.now(UTC)
"""The time the module's tests verify at: taken again when the module starts (`_now`), since
its certificates are valid from 5 minutes before they are issued, and the suite may reach this
module later than that after collecting it."""


@pytest.fixture(scope="module", autouse=True)
def _now() -> None:
    global NOW
    NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return Federation(tmp_path_factory.mktemp("federation"))


def verify(net: Federation, signed: network_pb2.SignedNetworkConfiguration, *,
           now: datetime | None = None, current: netconf.VerifiedConfiguration | None = None
           ) -> netconf.VerifiedConfiguration:
    return netconf.verify(signed, net.ca.certificate, now or NOW, current)


def refused(net: Federation, signed: network_pb2.SignedNetworkConfiguration,
            error: type[errors.NetworkConfigurationRejected], **options) -> str:
    with pytest.raises(error) as caught:
        verify(net, signed, **options)
    return caught.value.message


def test_a_signed_configuration_verifies_and_answers_lookups(net: Federation) -> None:
    verified = verify(net, net.signed(version=3))
    assert (verified.network_id, verified.version) == (NETWORK_ID, 3)
    assert verified.member_for_region("440100").id == "gd-gateway"
    assert verified.member_for_region("110000").id == "bj-gateway"
    assert verified.member_for_region("120000") is None
    assert verified.member("sh-gateway").region_codes == ["310000"]
    assert verified.member("xx-gateway") is None
    assert verified.crl.issuer == net.ca.certificate.subject
    assert verified.expire_time > NOW


def test_sign_refuses_to_publish_what_receivers_would_refuse(net: Federation) -> None:
    key = SigningKey.load(net.authority / "signing.key")
    pem = (net.authority / SIGNING_CERT).read_text()
    signed = netconf.sign(net.unsigned(), key, pem, net.ca.certificate, version=1,
                          validity=timedelta(hours=1), now=NOW)
    assert signed.version == 1
    with pytest.raises(errors.NetworkConfigurationInvalid, match="nextUpdate"):
        netconf.sign(net.unsigned(), key, pem, net.ca.certificate, version=2,
                     validity=timedelta(days=30), now=NOW)


def test_the_same_bytes_again_are_accepted(net: Federation) -> None:
    signed = net.signed(version=5)
    current = verify(net, signed)
    assert verify(net, signed, current=current).payload == current.payload


def test_a_higher_version_replaces_the_current_one(net: Federation) -> None:
    current = verify(net, net.signed(version=5))
    assert verify(net, net.signed(version=6), current=current).version == 6


@pytest.mark.parametrize("version", [4, 5], ids=["older", "same-version-other-bytes"])
def test_version_replay_is_not_newer(net: Federation, version: int) -> None:
    current = verify(net, net.signed(version=5))
    replayed = net.signed(version=version, now=NOW - timedelta(minutes=1))
    message = refused(net, replayed, errors.NetworkConfigurationNotNewer, current=current)
    assert f"version {version}, not newer than the current version 5" in message


def test_expired(net: Federation) -> None:
    signed = net.signed(now=NOW - timedelta(days=2))
    assert "expired at" in refused(net, signed, errors.NetworkConfigurationExpired)


def test_not_yet_valid(net: Federation) -> None:
    with pytest.raises(errors.NetworkConfigurationExpired) as caught:
        verify(net, net.signed(now=NOW + timedelta(hours=1)))
    assert caught.value.reason == "NETWORK_CONFIGURATION_NOT_YET_VALID"


def test_signed_by_an_agency_certificate(net: Federation, tmp_path: Path) -> None:
    net.ca.issue_agency("gd-health", tmp_path / "agency")
    signed = net.sign(net.unsigned(), authority=tmp_path / "agency")
    assert "urn:govshare:agency:gd-health" in refused(
        net, signed, errors.NetworkConfigurationSignatureInvalid)


def test_signed_by_a_gateway_certificate(net: Federation) -> None:
    signed = net.sign(net.unsigned(), authority=net.folder("gd-gateway"))
    refused(net, signed, errors.NetworkConfigurationSignatureInvalid)


def test_signed_by_an_authority_of_another_ca(net: Federation, tmp_path: Path) -> None:
    other = CertificateAuthority.init(tmp_path / "other-ca", name="rogue root")
    other.issue_network_authority(NETWORK_ID, tmp_path / "rogue")
    signed = net.sign(net.unsigned(), authority=tmp_path / "rogue")
    assert "not signed by" in refused(net, signed, errors.NetworkConfigurationSignatureInvalid)


def test_signed_by_the_authority_of_another_network(net: Federation, tmp_path: Path) -> None:
    net.ca.issue_network_authority("cn-test", tmp_path / "test-authority")
    signed = net.sign(net.unsigned(), authority=tmp_path / "test-authority")
    assert "'cn-test'" in refused(net, signed, errors.NetworkConfigurationSignatureInvalid)


def test_authority_certificate_expired(net: Federation, tmp_path: Path) -> None:
    net.ca.issue_network_authority(NETWORK_ID, tmp_path / "old", validity_days=1,
                                   now=NOW - timedelta(days=3))
    signed = net.sign(net.unsigned(), authority=tmp_path / "old")
    assert "expired" in refused(net, signed, errors.NetworkConfigurationSignatureInvalid)


def test_revoked_authority(tmp_path: Path) -> None:
    net = Federation(tmp_path)
    current = verify(net, net.signed(version=1))
    serial = x509.load_pem_x509_certificate((net.authority / SIGNING_CERT).read_bytes())
    net.ca.revoke(f"{serial.serial_number:x}", "keyCompromise")
    # Carrying the CRL that revokes it:
    assert "revoked" in refused(net, net.signed(version=2),
                                errors.NetworkConfigurationSignatureInvalid)
    # Carrying the old CRL, to a receiver that already holds the newer one:
    stale = net.sign(current.configuration, version=3)
    holder = verify(net, net.sign(net.unsigned(), 2, authority=_new_authority(net, tmp_path)))
    assert "revoked" in refused(net, stale, errors.NetworkConfigurationSignatureInvalid,
                                current=holder)


def test_a_crl_the_receiver_holds_besides_counts_for_the_authority(tmp_path: Path) -> None:
    # A stolen authority key signs with the CRL from before its revocation; the receiver holds
    # no configuration carrying the revocation, only its own newer CRL ([tls] crl).
    net = Federation(tmp_path)
    old_crl = net.crl_der()
    authority = x509.load_pem_x509_certificate((net.authority / SIGNING_CERT).read_bytes())
    net.ca.revoke(f"{authority.serial_number:x}", "keyCompromise")
    stolen = net.sign(_carrying(net, old_crl), 1)
    assert verify(net, stolen).version == 1  # by its own CRL alone it passes
    with pytest.raises(errors.NetworkConfigurationSignatureInvalid, match="is revoked"):
        netconf.verify(stolen, net.ca.certificate, NOW, crl=net.ca.crl())
    # An older CRL held besides does not hide the revocation the carried one holds.
    with pytest.raises(errors.NetworkConfigurationSignatureInvalid, match="is revoked"):
        netconf.verify(net.signed(), net.ca.certificate, NOW,
                       crl=x509.load_der_x509_crl(old_crl))


def _carrying(net: Federation, crl_der: bytes) -> network_pb2.NetworkConfiguration:
    configuration = net.unsigned()
    configuration.crl_der = crl_der
    return configuration


def test_configuration_cannot_outlive_its_authority_certificate(net: Federation,
                                                               tmp_path: Path) -> None:
    net.ca.issue_network_authority(NETWORK_ID, tmp_path / "short", validity_days=1, now=NOW)
    folder = tmp_path / "short"
    with pytest.raises(errors.NetworkConfigurationInvalid,
                       match="after the notAfter of the network authority certificate"):
        netconf.sign(net.unsigned(), SigningKey.load(folder / SIGNING_KEY),
                     (folder / SIGNING_CERT).read_text(), net.ca.certificate, version=1,
                     validity=timedelta(days=3), now=NOW)
    # Sealed without sign's checks, receivers refuse it as well, while the certificate is valid.
    outliving = net.sign(net.unsigned(), validity=timedelta(days=3), authority=folder)
    assert "renewed authority certificate" in refused(net, outliving,
                                                      errors.NetworkConfigurationInvalid)
    assert verify(net, net.sign(net.unsigned(), validity=timedelta(hours=23),
                                authority=folder)).version == 1


@pytest.mark.parametrize("purpose", ["tls", "signing"])
def test_member_certificate_expiring_before_the_configuration_is_refused(
        net: Federation, tmp_path: Path, purpose: str) -> None:
    net.ca.issue_gateway(tmp_path / "short", "gd-gateway", validity_days=1, now=NOW)
    member = net.member("gd-gateway")
    short = tmp_path / "short" / {"tls": TLS_CERT, "signing": SIGNING_CERT}[purpose]
    setattr(member, f"{purpose}_certificate_pem", short.read_text())
    members = [member, net.member("bj-gateway")]
    message = refused(net, net.sign(net.unsigned(members), validity=timedelta(days=2)),
                      errors.NetworkConfigurationInvalid)
    assert f"the notAfter of member 'gd-gateway' {purpose} certificate" in message
    assert "govshare certs issue-gateway" in message
    assert verify(net, net.sign(net.unsigned(members), validity=timedelta(hours=23))).version == 1


def _new_authority(net: Federation, tmp_path: Path) -> Path:
    net.ca.issue_network_authority(NETWORK_ID, tmp_path / "new-authority")
    return tmp_path / "new-authority"


def test_a_newer_configuration_never_carries_an_older_crl(tmp_path: Path) -> None:
    net = Federation(tmp_path)
    old = net.unsigned()
    net.ca.renew_crl()
    current = verify(net, net.signed(version=1))
    message = refused(net, net.sign(old, version=2), errors.NetworkConfigurationInvalid,
                      current=current)
    assert "older than the current configuration's" in message


def test_tampered_payload(net: Federation) -> None:
    signed = net.signed()
    configuration = network_pb2.NetworkConfiguration.FromString(signed.envelope.payload)
    configuration.members[1].address = "attacker.example:443"
    signed.envelope.payload = configuration.SerializeToString(deterministic=True)
    assert "does not verify" in refused(net, signed, errors.NetworkConfigurationSignatureInvalid)


def test_unknown_payload_type(net: Federation) -> None:
    signed = net.signed()
    signed.envelope.payload_type = envelopes.MANIFEST
    assert envelopes.MANIFEST in refused(net, signed, errors.NetworkConfigurationInvalid)


def test_a_signature_of_another_statement_type_does_not_carry_over(net: Federation) -> None:
    signed = net.signed()
    key = SigningKey.load(net.authority / "signing.key")
    signed.envelope.CopyFrom(envelopes.seal(
        key, envelopes.RECEIPT, network_pb2.NetworkConfiguration.FromString(
            signed.envelope.payload)))
    signed.envelope.payload_type = envelopes.NETWORK_CONFIGURATION
    refused(net, signed, errors.NetworkConfigurationSignatureInvalid)


def _with(net: Federation, change) -> network_pb2.SignedNetworkConfiguration:
    """A configuration changed by `change` (an operator's mistake or an attacker's), signed by
    the genuine authority without the builder's checks."""
    configuration = network_pb2.NetworkConfiguration()
    configuration.CopyFrom(net.unsigned())
    change(configuration)
    return net.sign(configuration)


def test_duplicate_region(net: Federation) -> None:
    signed = _with(net, lambda c: c.members[2].region_codes.append("440100"))
    message = refused(net, signed, errors.NetworkConfigurationInvalid)
    assert "share region_codes '440100'" in message


def test_duplicate_member_id(net: Federation) -> None:
    def twice(configuration: network_pb2.NetworkConfiguration) -> None:
        configuration.members.add().CopyFrom(configuration.members[0])
        configuration.members[-1].ClearField("region_codes")
        configuration.members[-1].region_codes.append("650000")
    assert "share id 'gd-gateway'" in refused(net, _with(net, twice),
                                              errors.NetworkConfigurationInvalid)


def test_member_certificate_id_mismatch(net: Federation) -> None:
    def swapped(configuration: network_pb2.NetworkConfiguration) -> None:
        configuration.members[0].tls_certificate_pem = configuration.members[1].tls_certificate_pem
    message = refused(net, _with(net, swapped), errors.NetworkConfigurationInvalid)
    assert "is of urn:govshare:gateway:bj-gateway, not of urn:govshare:gateway:gd-gateway" \
        in message


def test_member_certificate_of_another_ca(net: Federation, tmp_path: Path) -> None:
    other = CertificateAuthority.init(tmp_path / "other-ca", name="rogue root")
    other.issue_gateway(tmp_path / "rogue", "gd-gateway")
    signed = _with(net, lambda c: setattr(c.members[0], "signing_certificate_pem",
                                          (tmp_path / "rogue" / SIGNING_CERT).read_text()))
    assert "not signed by" in refused(net, signed, errors.NetworkConfigurationInvalid)


def test_revoked_member_certificate(tmp_path: Path) -> None:
    net = Federation(tmp_path)
    net.ca.revoke("urn:govshare:gateway:sh-gateway", "keyCompromise")
    with pytest.raises(errors.NetworkConfigurationInvalid, match="revoked"):
        net.unsigned()


@pytest.mark.parametrize(("change", "words"), [
    (lambda c: c.members[0].region_codes.append("44010"), "not a GB/T 2260 code"),
    (lambda c: c.members[0].region_codes.append("０４４０００"), "not a GB/T 2260 code"),
    (lambda c: c.members[0].ClearField("region_codes"), "serves no region"),
    (lambda c: setattr(c.members[0], "address", "gw.example.gov"), "not host:port"),
    (lambda c: setattr(c.members[0], "address", "gw.example.gov:70000"), "not host:port"),
    (lambda c: setattr(c.members[0], "address", "gw\x1b[2J:443"), "not host:port"),
    (lambda c: setattr(c.members[0], "id", "GD"), "must match"),
    (lambda c: c.ClearField("members"), "no member gateway"),
    (lambda c: setattr(c.members[0], "audit_origin", "other/log"), "not its audit_origin"),
    (lambda c: setattr(c.members[0], "audit_verifier_key", "nonsense"), "signed-note verifier"),
    (lambda c: setattr(c.members[0], "witness_verifier_key", c.members[0].audit_verifier_key),
     "cosignature/v1"),
    (lambda c: setattr(c.members[1], "witness_verifier_key", c.members[0].witness_verifier_key),
     "share witness_verifier_key"),
    (lambda c: setattr(c.witness_policy, "quorum", 3), "at most 2 cosignatures"),
    (lambda c: setattr(c, "crl_der", b"not a crl"), "not a CRL of the national CA"),
], ids=["short-region", "fullwidth-digits", "no-region", "no-port", "port-range",
        "escape-in-address", "member-id", "no-members", "origin-mismatch",
        "bad-audit-key", "note-key-as-witness-key", "shared-witness-key", "quorum", "bad-crl"])
def test_malformed_configurations_are_invalid(net: Federation, change, words: str) -> None:
    message = refused(net, _with(net, change), errors.NetworkConfigurationInvalid)
    assert words in message


def _audit_key_of(member: network_pb2.MemberGateway, origin: str) -> str:
    """`member`'s audit key named for another log's `origin`."""
    key = NoteVerifier.from_verifier_key(member.audit_verifier_key).key
    return NoteVerifier(origin, key).verifier_key


def _own_signing_key_as_witness_key(member: network_pb2.MemberGateway) -> None:
    key = NoteVerifier.from_verifier_key(member.audit_verifier_key).key
    member.witness_verifier_key = CosignatureVerifier("gd-witness", key).verifier_key


@pytest.mark.parametrize(("change", "words"), [
    (lambda c: setattr(c.members[1], "address", c.members[0].address.upper()),
     "share address 'gd-gateway.example.gov:8443'"),
    (lambda c: setattr(c.members[1], "audit_verifier_key",
                       _audit_key_of(c.members[0], c.members[1].audit_origin)),
     "'gd-gateway' and 'bj-gateway' share a public key"),
    (lambda c: _own_signing_key_as_witness_key(c.members[0]),
     "'gd-gateway' and 'gd-gateway' share a public key"),
], ids=["one-address", "another-members-audit-key", "signing-key-as-witness-key"])
def test_members_sharing_an_address_or_a_key_are_refused(net: Federation, change,
                                                         words: str) -> None:
    """Two members at one address would have their peers reach one for the other; a key named
    for two members would let one sign or connect as the other."""
    message = refused(net, _with(net, change), errors.NetworkConfigurationInvalid)
    assert words in message and "each must be unique in the network" in message


def test_a_quorum_of_zero_in_a_network_of_several_members(net: Federation) -> None:
    """A quorum of 0 would switch witnessing off for every receiver: refused by the rules, so
    by `build` (network create), `sign` and every receiver; a network of one member, which has
    no witness, keeps 0."""
    message = refused(net, _with(net, lambda c: setattr(c.witness_policy, "quorum", 0)),
                      errors.NetworkConfigurationInvalid)
    assert "quorum is 0 in a network of 3 members" in message
    with pytest.raises(errors.NetworkConfigurationInvalid, match="quorum is 0"):
        net.unsigned(quorum=0)
    alone = net.unsigned([net.member("gd-gateway")], quorum=0)
    assert verify(net, net.sign(alone)).configuration.witness_policy.quorum == 0


def test_more_members_than_a_checkpoint_can_carry_signatures_for(tmp_path: Path) -> None:
    """A member's checkpoint carries its signature and one cosignature per other member; a
    network whose checkpoints would carry more lines than a signed note may (note's
    MAX_SIGNATURES) is refused, as every verifier would refuse those checkpoints."""
    crowd = Federation(tmp_path)
    members = []
    for index in range(MAX_SIGNATURES + 1):
        gateway_id = f"m{index}-gateway"
        crowd.add_gateway(gateway_id)
        member = crowd.member(gateway_id)
        member.region_codes[:] = [f"{110000 + index * 100}"]
        members.append(member)
    assert netconf.MAX_MEMBERS == MAX_SIGNATURES
    assert crowd.unsigned(members[:MAX_SIGNATURES]).members[-1].id == "m99-gateway"
    with pytest.raises(errors.NetworkConfigurationInvalid) as caught:
        crowd.unsigned(members)
    assert caught.value.metadata == {"field": "members", "members": "101",
                                     "max_members": "100"}
    assert "at most 100 signature lines" in caught.value.message


def test_build_refuses_a_malformed_network_id(net: Federation) -> None:
    with pytest.raises(errors.NetworkConfigurationInvalid, match="network_id 'X' must match"):
        netconf.build("X", [net.member("gd-gateway")], 0, net.crl_der(), net.ca.certificate, NOW)


def test_expire_time_not_after_issue_time(net: Federation) -> None:
    signed = net.sign(net.unsigned(), validity=timedelta(0))
    assert "is not after issue_time" in refused(net, signed, errors.NetworkConfigurationInvalid)


def test_a_crl_of_another_ca(net: Federation, tmp_path: Path) -> None:
    other = CertificateAuthority.init(tmp_path / "other-ca", name="rogue root")
    signed = _with(net, lambda c: setattr(c, "crl_der", other.crl().public_bytes(Encoding.DER)))
    assert "rogue root" in refused(net, signed, errors.NetworkConfigurationInvalid)


def test_a_configuration_of_another_network_does_not_replace_the_current(
        net: Federation, tmp_path: Path) -> None:
    current = verify(net, net.signed())
    net.ca.issue_network_authority("cn-test", tmp_path / "test-authority")
    other = _with(net, lambda c: setattr(c, "network_id", "cn-test"))
    other = net.sign(network_pb2.NetworkConfiguration.FromString(other.envelope.payload), 2,
                     authority=tmp_path / "test-authority")
    assert "not of the current 'cn-national'" in refused(
        net, other, errors.NetworkConfigurationInvalid, current=current)


def test_refusals_name_their_reason_and_status() -> None:
    assert errors.NetworkConfigurationInvalid("x").reason == "NETWORK_CONFIGURATION_INVALID"
    assert errors.NetworkConfigurationSignatureInvalid("x").code == "PERMISSION_DENIED"
    assert errors.NetworkConfigurationExpired("x").code == "FAILED_PRECONDITION"
    assert errors.NetworkConfigurationNotNewer("x").reason == "NETWORK_CONFIGURATION_NOT_NEWER"


def test_witness_verifier_keys_round_trip() -> None:
    key = SigningKey.generate()
    text = CosignatureVerifier("witness.example", key.verifier()).verifier_key
    assert CosignatureVerifier.from_verifier_key(text).key == key.verifier()


def _renewed(net: Federation, folder: Path, *, retired: datetime | None = None,
             previous: str | None = None, key_id: str | None = None):
    """A change renewing bj-gateway's signing certificate (the new one issued into `folder`):
    its certificate until now (or `previous`) listed as retired at `retired` (default: a
    minute ago)."""
    net.ca.issue_gateway(folder, "bj-gateway")

    def renew(configuration: network_pb2.NetworkConfiguration) -> None:
        member = configuration.members[1]
        old = previous or member.signing_certificate_pem
        member.previous_signing_certificates.add(
            certificate_pem=old, key_id=key_id or VerifyKey.from_certificate(old).key_id,
            retire_time=times.to_timestamp(retired or NOW - timedelta(minutes=1)))
        member.signing_certificate_pem = (folder / SIGNING_CERT).read_text()
    return renew


def _receipt(key: SigningKey, completed: datetime):
    return envelopes.seal(key, envelopes.RECEIPT, exchange_pb2.Receipt(
        exchange="agencies/gd-health/exchanges/x", complete_time=times.to_timestamp(completed)))


def test_a_renewed_members_earlier_certificate_verifies_what_it_signed_while_current(
        net: Federation, tmp_path: Path) -> None:
    """A member's signing certificate renewed: the configuration lists the earlier one with
    its retire time, and what the member signed with it before then still verifies."""
    old_key = SigningKey.load(net.folder("bj-gateway") / SIGNING_KEY)
    verified = verify(net, _with(net, _renewed(net, tmp_path / "renewed")))
    assert verified.signer(old_key.verifier().key_id).id == "bj-gateway"
    member = verified.member("bj-gateway")
    before = _receipt(old_key, NOW - timedelta(minutes=2))
    assert member_signing.open_signed(member, before, envelopes.RECEIPT, exchange_pb2.Receipt,
                                      "complete_time").exchange
    with pytest.raises(ValueError, match="retired at"):
        member_signing.open_signed(member, _receipt(old_key, NOW), envelopes.RECEIPT,
                                   exchange_pb2.Receipt, "complete_time")


def test_more_previous_signing_certificates_than_a_member_may_list(net: Federation,
                                                                   tmp_path: Path) -> None:
    def many(configuration: network_pb2.NetworkConfiguration) -> None:
        entry = configuration.members[1].previous_signing_certificates[0]
        for _ in range(member_signing.MAX_PREVIOUS):
            configuration.members[1].previous_signing_certificates.add().CopyFrom(entry)
    renew = _renewed(net, tmp_path / "renewed")
    signed = _with(net, lambda c: (renew(c), many(c)))
    assert "at most 8" in refused(net, signed, errors.NetworkConfigurationInvalid)


@pytest.mark.parametrize("case, words", [
    ("retired later", "still to come"),
    ("of another member", "not of member 'bj-gateway'"),
    ("another key id", "key_id is not the key id"),
    ("a TLS certificate", "not a signing certificate"),
    ("revoked", "revoked by the CRL"),
    ("the current one", "share signing key"),
])
def test_a_previous_signing_certificate_must_be_the_members_own_and_retired(
        net: Federation, tmp_path: Path, case: str, words: str) -> None:
    gd = net.folder("gd-gateway")
    options: dict = {
        "retired later": {"retired": NOW + timedelta(hours=1)},
        "of another member": {"previous": (gd / SIGNING_CERT).read_text()},
        "another key id": {"key_id": "00" * 32},
        "a TLS certificate": {"previous": (net.folder("bj-gateway") / TLS_CERT).read_text(),
                              "key_id": "00" * 32},
    }.get(case, {})
    if case == "revoked":
        issued = net.ca.issue_gateway(tmp_path / "old", "bj-gateway")
        net.ca.revoke(issued.signing.serial, "keyCompromise")
        options = {"previous": (tmp_path / "old" / SIGNING_CERT).read_text()}
    renew = _renewed(net, tmp_path / "renewed", **options)
    if case == "the current one":
        def renew(configuration: network_pb2.NetworkConfiguration) -> None:
            member = configuration.members[1]
            pem = member.signing_certificate_pem
            member.previous_signing_certificates.add(
                certificate_pem=pem, key_id=VerifyKey.from_certificate(pem).key_id,
                retire_time=times.to_timestamp(NOW - timedelta(minutes=1)))
    message = refused(net, _with(net, renew), errors.NetworkConfigurationInvalid)
    assert words in message
