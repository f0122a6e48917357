"""The national CA: issuance, chains, identities, revocation and the files it writes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from certs import (
    KINDS,
    AlreadyExists,
    CAError,
    CertificateAuthority,
    Identity,
    InvalidCertificate,
    InvalidCRL,
    InvalidValidity,
    NotFound,
    identity_from_certificate,
    is_revoked,
    load_crl,
    verify_chain,
)
from govshare.names import ID_PATTERN

E = TypeVar("E", bound=x509.ExtensionType)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.init(tmp_path / "ca")


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def extension(cert: x509.Certificate, kind: type[E]) -> E:
    return cert.extensions.get_extension_for_class(kind).value


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def self_signed(*uris: str) -> x509.Certificate:
    """A throwaway certificate with the given SAN URIs (none: no SAN at all)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
    )
    if uris:
        names = [x509.UniformResourceIdentifier(uri) for uri in uris]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256())


# Identity


@pytest.mark.parametrize(
    ("uri", "kind", "ident"),
    [
        ("urn:govshare:agency:health-ministry", "agency", "health-ministry"),
        ("urn:govshare:admin:abc", "admin", "abc"),
        ("urn:govshare:auditor:a1b", "auditor", "a1b"),
        ("urn:govshare:gateway:" + "a" * 64, "gateway", "a" * 64),
    ],
)
def test_parse_uri_accepts_valid_identities(uri: str, kind: str, ident: str) -> None:
    identity = Identity.parse_uri(uri)
    assert identity == Identity(kind, ident)
    assert identity.uri == uri


@pytest.mark.parametrize(
    "uri",
    [
        "urn:govshare:agency:Health",
        "urn:govshare:agency:ab",
        "urn:govshare:agency:" + "a" * 65,
        "urn:govshare:agency:health-",
        "urn:govshare:agency:1health",
        "urn:govshare:agency:health\n",
        "urn:govshare:agency:health:extra",
        "urn:govshare:agency:heal th",
        "urn:govshare:agency:",
        "urn:govshare:agency",
        "urn:govshare:root:health",
        "URN:GOVSHARE:agency:health",
        " urn:govshare:agency:health",
        "urn:other:agency:health",
    ],
)
def test_parse_uri_rejects_anything_else(uri: str) -> None:
    with pytest.raises(ValueError):
        Identity.parse_uri(uri)


@given(kind=st.sampled_from(KINDS), ident=st.from_regex(ID_PATTERN, fullmatch=True))
def test_uri_round_trips(kind: str, ident: str) -> None:
    assert Identity.parse_uri(Identity(kind, ident).uri) == Identity(kind, ident)


@pytest.mark.parametrize(
    "uris",
    [
        (),
        ("https://example.org",),
        ("urn:govshare:agency:one", "urn:govshare:agency:two"),
        ("urn:govshare:agency:one", "URN:GOVSHARE:agency:two"),
    ],
)
def test_identity_from_certificate_needs_exactly_one_urn(uris: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        identity_from_certificate(self_signed(*uris))


def test_identity_from_certificate_ignores_other_uris() -> None:
    cert = self_signed("https://example.org", "urn:govshare:auditor:carol")
    assert identity_from_certificate(cert) == Identity("auditor", "carol")


# The root


def test_init_writes_a_root_ca(ca: CertificateAuthority) -> None:
    assert sorted(p.name for p in ca.folder.iterdir()) == [
        "ca.key",
        "ca.lock",
        "ca.pem",
        "crl.pem",
        "index.json",
    ]
    root = load(ca.folder / "ca.pem")
    assert extension(root, x509.BasicConstraints) == x509.BasicConstraints(ca=True, path_length=0)
    usage = extension(root, x509.KeyUsage)
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    verify_chain(root, root)
    assert ca.list() == []
    assert list(ca.crl()) == [] and crl_number(ca.crl()) == 1


def test_init_refuses_to_overwrite(ca: CertificateAuthority) -> None:
    key = (ca.folder / "ca.key").read_bytes()
    with pytest.raises(AlreadyExists):
        CertificateAuthority.init(ca.folder)
    assert (ca.folder / "ca.key").read_bytes() == key


def test_open_reloads_the_same_root(ca: CertificateAuthority) -> None:
    assert CertificateAuthority.open(ca.folder).certificate_pem == ca.certificate_pem


def test_open_missing_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        CertificateAuthority.open(tmp_path / "nowhere")


def test_open_refuses_a_key_that_is_not_the_roots(ca: CertificateAuthority, tmp_path: Path) -> None:
    other = CertificateAuthority.init(tmp_path / "other")
    (ca.folder / "ca.key").unlink()
    (ca.folder / "ca.key").write_bytes((other.folder / "ca.key").read_bytes())
    with pytest.raises(CAError, match="not the key"):
        CertificateAuthority.open(ca.folder)
    (ca.folder / "ca.pem").write_text("garbage")
    with pytest.raises(CAError, match="unreadable"):
        CertificateAuthority.open(ca.folder)


# Issuance


def test_agency_bundle(ca: CertificateAuthority, tmp_path: Path) -> None:
    out = tmp_path / "health"
    bundle = ca.issue_agency("health-ministry", out)
    assert sorted(p.name for p in out.iterdir()) == [
        "ca.pem",
        "signing.key",
        "signing.pem",
        "tls.key",
        "tls.pem",
    ]
    assert (out / "ca.pem").read_bytes() == ca.certificate_pem
    assert bundle.identity == Identity("agency", "health-ministry")
    for name in ("tls.pem", "signing.pem"):
        cert = load(out / name)
        verify_chain(cert, ca.certificate)
        assert identity_from_certificate(cert) == bundle.identity
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
            "health-ministry"
        )
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
            "govshare agency"
        )


def test_agency_tls_certificate_is_a_p256_client_certificate(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    ca.issue_agency("health-ministry", tmp_path / "out")
    tls = load(tmp_path / "out" / "tls.pem")
    key = tls.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert list(extension(tls, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert extension(tls, x509.KeyUsage).digital_signature
    san = extension(tls, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == []


def test_signing_certificate_is_ed25519_for_signatures_only(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    ca.issue_agency("health-ministry", tmp_path / "out")
    signing = load(tmp_path / "out" / "signing.pem")
    assert isinstance(signing.public_key(), ed25519.Ed25519PublicKey)
    assert extension(signing, x509.KeyUsage) == x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    with pytest.raises(x509.ExtensionNotFound):
        signing.extensions.get_extension_for_class(x509.ExtendedKeyUsage)


def test_every_leaf_has_key_identifiers_a_random_serial_and_skew(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    ca = CertificateAuthority.init(tmp_path / "ca2030", now=now)
    ca.issue_agency("health-ministry", tmp_path / "out", validity_days=10, now=now)
    root_ski = extension(ca.certificate, x509.SubjectKeyIdentifier).digest
    serials = set()
    for name in ("tls.pem", "signing.pem"):
        cert = load(tmp_path / "out" / name)
        assert extension(cert, x509.AuthorityKeyIdentifier).key_identifier == root_ski
        assert extension(cert, x509.SubjectKeyIdentifier).digest == (
            x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
        )
        assert extension(cert, x509.BasicConstraints).ca is False
        assert cert.not_valid_before_utc == now - timedelta(minutes=5)
        assert cert.not_valid_after_utc == now + timedelta(days=10)
        assert cert.serial_number.bit_length() > 64
        serials.add(cert.serial_number)
    assert len(serials) == 2


def test_gateway_bundle(ca: CertificateAuthority, tmp_path: Path) -> None:
    bundle = ca.issue_gateway(tmp_path / "gw", dns_names=("localhost", "gw.gov"))
    tls = load(tmp_path / "gw" / "tls.pem")
    verify_chain(tls, ca.certificate)
    # It serves, and calls the network's other gateways as their peer.
    assert list(extension(tls, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.SERVER_AUTH,
                                                           ExtendedKeyUsageOID.CLIENT_AUTH]
    san = extension(tls, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "gw.gov"]
    assert san.get_values_for_type(x509.IPAddress) == [ip_address("127.0.0.1")]
    assert identity_from_certificate(tls) == Identity("gateway", "gateway")
    signing = load(tmp_path / "gw" / "signing.pem")
    assert isinstance(signing.public_key(), ed25519.Ed25519PublicKey)
    assert bundle.signing is not None and bundle.signing.purpose == "signing"


@pytest.mark.parametrize("role", ["admin", "auditor"])
def test_staff_get_a_tls_client_certificate_only(
    ca: CertificateAuthority, tmp_path: Path, role: str
) -> None:
    bundle = ca.issue_staff("carol", role, tmp_path / "staff")
    assert sorted(p.name for p in (tmp_path / "staff").iterdir()) == [
        "ca.pem",
        "tls.key",
        "tls.pem",
    ]
    assert bundle.signing is None
    tls = load(tmp_path / "staff" / "tls.pem")
    verify_chain(tls, ca.certificate)
    assert identity_from_certificate(tls).uri == f"urn:govshare:{role}:carol"
    assert list(extension(tls, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]


@pytest.mark.parametrize("role", ["agency", "gateway", "root"])
def test_staff_roles_are_admin_and_auditor_only(
    ca: CertificateAuthority, tmp_path: Path, role: str
) -> None:
    with pytest.raises(ValueError):
        ca.issue_staff("carol", role, tmp_path / "staff")


def test_invalid_agency_id_writes_nothing(ca: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ca.issue_agency("Health Ministry", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert ca.list() == []


def test_private_keys_are_0600(ca: CertificateAuthority, tmp_path: Path) -> None:
    ca.issue_agency("health-ministry", tmp_path / "out")
    for key in (
        ca.folder / "ca.key",
        tmp_path / "out" / "tls.key",
        tmp_path / "out" / "signing.key",
    ):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_issuing_never_overwrites(ca: CertificateAuthority, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ca.issue_agency("health-ministry", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(AlreadyExists):
        ca.issue_agency("health-ministry", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert len(ca.list()) == 2


def test_a_stray_key_blocks_the_whole_bundle(ca: CertificateAuthority, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "signing.key").write_text("someone else's key")
    with pytest.raises(AlreadyExists, match=r"signing\.key"):
        ca.issue_agency("health-ministry", out)
    assert sorted(p.name for p in out.iterdir()) == ["signing.key"]
    assert ca.list() == []


def test_index_records_every_issuance(ca: CertificateAuthority, tmp_path: Path) -> None:
    bundle = ca.issue_agency("health-ministry", tmp_path / "a")
    ca.issue_staff("carol", "admin", tmp_path / "s")
    rows = CertificateAuthority.open(ca.folder).list()
    assert [(r.identity, r.purpose) for r in rows] == [
        ("urn:govshare:agency:health-ministry", "tls"),
        ("urn:govshare:agency:health-ministry", "signing"),
        ("urn:govshare:admin:carol", "tls"),
    ]
    assert rows[0] == bundle.tls
    assert rows[0].serial == f"{load(tmp_path / 'a' / 'tls.pem').serial_number:x}"
    assert rows[0].subject == "O=govshare agency,CN=health-ministry"


# Chains


def test_expired_certificate_fails_verify_chain(ca: CertificateAuthority, tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(days=30)
    ca.issue_agency("old-agency", tmp_path / "out", validity_days=1, now=past)
    with pytest.raises(InvalidCertificate, match="expired"):
        verify_chain(load(tmp_path / "out" / "tls.pem"), ca.certificate)


def test_not_yet_valid_certificate_fails_verify_chain(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    future = datetime.now(UTC) + timedelta(days=30)
    ca.issue_agency("new-agency", tmp_path / "out", now=future)
    cert = load(tmp_path / "out" / "tls.pem")
    with pytest.raises(InvalidCertificate, match="not valid before"):
        verify_chain(cert, ca.certificate)
    verify_chain(cert, ca.certificate, now=future)


def test_clock_skew_is_tolerated(ca: CertificateAuthority, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca.issue_agency("health-ministry", tmp_path / "out", now=now + timedelta(minutes=4))
    verify_chain(load(tmp_path / "out" / "tls.pem"), ca.certificate, now=now)


def test_certificate_of_another_ca_fails_verify_chain(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    # Same default name, different key: only the signature tells them apart.
    other = CertificateAuthority.init(tmp_path / "other")
    other.issue_agency("health-ministry", tmp_path / "out")
    with pytest.raises(InvalidCertificate, match="not signed by"):
        verify_chain(load(tmp_path / "out" / "tls.pem"), ca.certificate)


def test_expired_root_fails_verify_chain(tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(days=30)
    ca = CertificateAuthority.init(tmp_path / "ca", validity_days=10, now=past)
    ca.issue_agency("health-ministry", tmp_path / "out", now=past)
    cert = load(tmp_path / "out" / "tls.pem")
    assert cert.not_valid_after_utc == ca.certificate.not_valid_after_utc  # clamped to the root
    with pytest.raises(InvalidCertificate, match="CA certificate expired"):
        verify_chain(cert, ca.certificate)


def test_naive_now_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone"):
        ca.issue_agency("health-ministry", tmp_path / "out", now=datetime.now())


# Revocation


def test_revoke_by_serial(ca: CertificateAuthority, tmp_path: Path) -> None:
    revoked = ca.issue_agency("health-ministry", tmp_path / "a")
    kept = ca.issue_agency("tax-office", tmp_path / "b")
    [row] = ca.revoke(revoked.tls.serial, "keyCompromise")
    assert row.serial == revoked.tls.serial and row.reason == "keyCompromise"
    crl = load_crl(ca.folder / "crl.pem")
    root_key = ca.certificate.public_key()
    assert isinstance(root_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(root_key)
    entry = crl.get_revoked_certificate_by_serial_number(int(revoked.tls.serial, 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert is_revoked(load(tmp_path / "a" / "tls.pem"), crl, ca.certificate)
    assert not is_revoked(load(tmp_path / "a" / "signing.pem"), crl, ca.certificate)
    assert not is_revoked(load(tmp_path / "b" / "tls.pem"), crl, ca.certificate)
    assert [r.serial for r in ca.list() if r.revoked_at] == [revoked.tls.serial]
    assert kept.tls.serial not in {r.serial for r in ca.list() if r.revoked_at}


@pytest.mark.parametrize("prefix", ["", "0x", "0x000"])
@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_revoke_accepts_serial_spellings(
    ca: CertificateAuthority, tmp_path: Path, prefix: str, case: Callable[[str], str]
) -> None:
    bundle = ca.issue_agency("health-ministry", tmp_path / "a")
    [row] = ca.revoke(prefix + case(bundle.tls.serial))
    assert row.serial == bundle.tls.serial


def test_revoke_by_identity_revokes_all_its_certificates(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    ca.issue_agency("health-ministry", tmp_path / "a")
    ca.issue_agency("health-ministry", tmp_path / "a2")
    ca.issue_agency("tax-office", tmp_path / "b")
    revoked = ca.revoke("urn:govshare:agency:health-ministry", "affiliationChanged")
    assert len(revoked) == 4
    crl = ca.crl()
    for name in ("a", "a2"):
        for cert in ("tls.pem", "signing.pem"):
            assert is_revoked(load(tmp_path / name / cert), crl, ca.certificate)
    assert not is_revoked(load(tmp_path / "b" / "tls.pem"), crl, ca.certificate)


def test_revoking_again_keeps_the_first_record(ca: CertificateAuthority, tmp_path: Path) -> None:
    bundle = ca.issue_agency("health-ministry", tmp_path / "a")
    first = ca.revoke(bundle.tls.serial, "keyCompromise")
    again = ca.revoke(bundle.tls.serial, "superseded", now=datetime.now(UTC) + timedelta(days=1))
    assert again == first
    assert len(list(ca.crl())) == 1


def test_crl_number_increases(ca: CertificateAuthority, tmp_path: Path) -> None:
    bundle = ca.issue_agency("health-ministry", tmp_path / "a")
    ca.revoke(bundle.tls.serial)
    assert crl_number(ca.crl()) == 2
    assert bundle.signing is not None
    ca.revoke(bundle.signing.serial)
    crl = ca.crl()
    assert crl_number(crl) == 3
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=7)
    # "unspecified" is the absence of a reason extension (RFC 5280).
    entry = crl.get_revoked_certificate_by_serial_number(int(bundle.tls.serial, 16))
    assert entry is not None and len(entry.extensions) == 0


@pytest.mark.parametrize(
    "target", ["abcdef0123", "urn:govshare:agency:nobody", "not-a-serial", "urn:govshare:nonsense"]
)
def test_revoking_the_unknown_is_not_found(ca: CertificateAuthority, target: str) -> None:
    with pytest.raises(NotFound):
        ca.revoke(target)
    assert crl_number(ca.crl()) == 1


def test_unknown_reason_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    bundle = ca.issue_agency("health-ministry", tmp_path / "a")
    with pytest.raises(CAError, match="reason"):
        ca.revoke(bundle.tls.serial, "certificateHold")
    assert ca.list()[0].revoked_at is None


def test_is_revoked_distrusts_a_crl_from_another_ca(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    other = CertificateAuthority.init(tmp_path / "other")
    ca.issue_agency("health-ministry", tmp_path / "a")
    with pytest.raises(InvalidCRL):
        is_revoked(load(tmp_path / "a" / "tls.pem"), other.crl(), ca.certificate)


def test_load_crl_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_crl(tmp_path / "missing.pem")
    (tmp_path / "bad.pem").write_text("not a crl")
    with pytest.raises(InvalidCRL):
        load_crl(tmp_path / "bad.pem")


def test_list_shows_expiry_and_revocation(ca: CertificateAuthority, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca.issue_agency("old-agency", tmp_path / "old", validity_days=1, now=now - timedelta(days=30))
    ca.issue_agency("early-agency", tmp_path / "early", now=now + timedelta(days=30))
    current = ca.issue_agency("health-ministry", tmp_path / "a", validity_days=90)
    assert current.signing is not None
    ca.revoke(current.signing.serial, "keyCompromise")
    rows = ca.list()
    assert [row.status(now) for row in rows] == [
        "expired",
        "expired",
        "not-yet-valid",
        "not-yet-valid",
        "valid",
        "revoked",
    ]
    assert rows[4].not_after == load(tmp_path / "a" / "tls.pem").not_valid_after_utc
    assert rows[5].revoked_at is not None and rows[5].reason == "keyCompromise"


# Several operators at once, refusals that write nothing, folder modes, CRL renewal

_ISSUER = """
import sys, time
from pathlib import Path
from certs import CertificateAuthority
ca_dir, root, worker = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
ca = CertificateAuthority.open(ca_dir)
(root / f"ready-{worker}").touch()
while not (root / "go").exists():
    time.sleep(0.001)
for n in range(3):
    ca.issue_agency(f"agency-{worker}-{n}", root / f"out-{worker}-{n}")
"""


def test_concurrent_issuances_all_reach_the_index_and_can_be_revoked(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    workers = range(6)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _ISSUER, str(ca.folder), str(tmp_path), str(worker)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in workers
    ]
    while len(list(tmp_path.glob("ready-*"))) < len(workers):
        time.sleep(0.01)
    (tmp_path / "go").touch()  # every process starts issuing at the same moment
    for process in processes:
        assert process.wait(60) == 0, process.stderr.read() if process.stderr else ""

    written = {
        f"{load(path).serial_number:x}"
        for path in tmp_path.glob("out-*/*.pem")
        if path.name != "ca.pem"
    }
    assert len(written) == 2 * 3 * len(workers)
    assert {row.serial for row in ca.list()} == written
    assert not list(ca.folder.glob("*.tmp"))
    for worker in workers:
        for n in range(3):
            ca.revoke(f"urn:govshare:agency:agency-{worker}-{n}")
    assert {f"{entry.serial_number:x}" for entry in ca.crl()} == written


def test_days_past_the_x509_limit_write_nothing(ca: CertificateAuthority, tmp_path: Path) -> None:
    index = (ca.folder / "index.json").read_bytes()
    with pytest.raises(InvalidValidity, match="9999-12-31"):
        ca.issue_agency("health-ministry", tmp_path / "out", validity_days=999_999_999)
    with pytest.raises(InvalidValidity, match="not positive"):
        ca.issue_staff("carol", "admin", tmp_path / "out", validity_days=0)
    assert not (tmp_path / "out").exists()
    assert (ca.folder / "index.json").read_bytes() == index
    ca.issue_agency("health-ministry", tmp_path / "out")  # the retry is not blocked


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"validity_days": 10**9}, InvalidValidity), ({"name": ""}, ValueError)],
)
def test_refused_init_writes_nothing(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        CertificateAuthority.init(tmp_path / "ca", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "ca").exists()


def test_a_folder_holding_other_files_keeps_its_mode(ca: CertificateAuthority,
                                                     tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    (shared / "gateway.toml").write_text("# the operator's\n")
    ca.issue_gateway(shared)
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755  # not ours to close
    assert stat.S_IMODE(os.stat(shared / "signing.key").st_mode) == 0o600


def test_folders_holding_keys_are_0700_even_if_they_existed_empty(tmp_path: Path) -> None:
    folders = [tmp_path / name for name in ("ca", "agency", "gateway", "staff")]
    for folder in folders:
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
    ca = CertificateAuthority.init(folders[0])
    ca.issue_agency("health-ministry", folders[1])
    ca.issue_gateway(folders[2])
    ca.issue_staff("carol", "admin", folders[3])
    assert [stat.S_IMODE(os.stat(folder).st_mode) for folder in folders] == [0o700] * 4


def test_renew_crl_keeps_the_revocations_with_a_higher_number(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    bundle = ca.issue_agency("health-ministry", tmp_path / "a")
    ca.revoke(bundle.tls.serial, "keyCompromise")
    before = ca.crl()
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=6)
    renewed = ca.renew_crl(30, now=later)
    assert renewed == ca.crl()
    assert crl_number(renewed) == crl_number(before) + 1
    assert renewed.last_update_utc == later
    assert renewed.next_update_utc == later + timedelta(days=30)

    def entries(crl: x509.CertificateRevocationList) -> list[tuple[object, ...]]:
        return [(e.serial_number, e.revocation_date_utc, list(e.extensions)) for e in crl]

    assert entries(renewed) == entries(before) and len(entries(renewed)) == 1
    assert is_revoked(load(tmp_path / "a" / "tls.pem"), renewed, ca.certificate)
    assert crl_number(ca.renew_crl()) == crl_number(before) + 2
    assert stat.S_IMODE(os.stat(ca.folder / "crl.pem").st_mode) == 0o644
    assert json.loads((ca.folder / "index.json").read_text())["certificates"][0]["reason"] == (
        "keyCompromise"
    )


def test_renew_crl_refuses_a_bad_lifetime(ca: CertificateAuthority) -> None:
    crl = (ca.folder / "crl.pem").read_bytes()
    for days in (0, 10**9):
        with pytest.raises(InvalidValidity):
            ca.renew_crl(days)
    assert (ca.folder / "crl.pem").read_bytes() == crl


def test_crl_numbering_survives_a_deleted_or_damaged_crl_file(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    # Gateways refuse a CRL numbered at or below the one they hold: restarting at 1 would
    # leave every later revocation unenforced.
    bundle = ca.issue_agency("health-ministry", tmp_path / "a")
    ca.revoke(bundle.tls.serial, "keyCompromise")
    ca.renew_crl()
    assert json.loads((ca.folder / "index.json").read_text())["crl_number"] == 3
    (ca.folder / "crl.pem").unlink()
    renewed = ca.renew_crl()
    assert crl_number(renewed) == 4 and len(list(renewed)) == 1
    (ca.folder / "crl.pem").write_bytes(b"half a CRL")
    assert crl_number(ca.renew_crl()) == 5


def test_an_index_without_a_crl_number_numbers_from_crl_pem(ca: CertificateAuthority) -> None:
    ca.renew_crl()
    index = json.loads((ca.folder / "index.json").read_text())
    del index["crl_number"]  # as a CA made before the index kept it
    (ca.folder / "index.json").write_text(json.dumps(index))
    assert crl_number(ca.renew_crl()) == 3
    assert json.loads((ca.folder / "index.json").read_text())["crl_number"] == 3
