"""The CRL file, broken in every way an operator or an attacker can break it.

At start the gateway refuses to serve without a CRL it can verify. While it runs, a CRL file
that vanishes, is half-copied, comes from another issuer or key, or is an older CRL put back
leaves the last good CRL in force (logged once per change, never INTERNAL), and a CRL past its
nextUpdate makes every call fail closed with UNAVAILABLE CRL_EXPIRED until the CA re-signs it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agencies import errors
from certs.ca import CertificateAuthority
from gateway import config as config_module
from gateway.network import lay_out
from gateway.server import StartError, create_server
from tests.support.exchange import MovableClock, last_leaf
from tests.support.network import AGENCIES, Network, start_network

REVOKED = "urn:govshare:agency:sz-market"


def _crl_pem(ca: CertificateAuthority, *, key=None, issuer=None, number: int | None = 1000,
             next_update: timedelta = timedelta(days=7)) -> bytes:
    """A CRL revoking nothing, signed by the CA's key unless `key` is given."""
    now = datetime.now(UTC)
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer or ca.certificate.subject)
               .last_update(now - timedelta(days=30)).next_update(now + next_update))
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    crl = builder.sign(key or ca._key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes) -> None:
    """Write over the CRL in place, as `cp` does, with a new modification time."""
    time.sleep(0.02)
    path.write_bytes(data)


# -- at start ------------------------------------------------------------------------------------


def _laid_out(tmp_path: Path):
    layout = lay_out(tmp_path / "net", AGENCIES)
    return layout, CertificateAuthority.open(layout.ca_folder), layout.ca_folder / "crl.pem"


@pytest.mark.parametrize("problem", ["missing", "empty", "foreign key", "foreign issuer",
                                     "no number", "expired"])
def test_the_gateway_does_not_start_without_a_crl_it_can_verify(tmp_path, problem):
    layout, ca, crl = _laid_out(tmp_path)
    other = ec.generate_private_key(ec.SECP256R1())
    stranger = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "another CA")])
    broken = {
        "empty": b"",
        "foreign key": _crl_pem(ca, key=other),
        "foreign issuer": _crl_pem(ca, issuer=stranger),
        "no number": _crl_pem(ca, number=None),
        "expired": _crl_pem(ca, next_update=-timedelta(days=1)),
    }
    if problem == "missing":
        crl.unlink()
    else:
        crl.write_bytes(broken[problem])
    config = config_module.load(layout.config_path)

    with pytest.raises(StartError) as refused:
        create_server(config)

    message = str(refused.value)
    assert message.startswith("[tls] crl: ") and str(crl) in message
    if problem == "expired":
        assert "govshare certs crl" in message
    assert not config.path(config.storage.database).exists()  # nothing was touched


def test_serve_names_the_missing_crl_without_a_traceback(tmp_path):
    layout, _, crl = _laid_out(tmp_path)
    crl.unlink()
    command = [sys.executable, "-c", "from gateway.cli import main; main()", "gateway", "serve",
               "--config", str(layout.config_path), "--log-level", "WARNING"]
    served = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            check=False)
    assert served.returncode != 0
    assert "refusing to serve: [tls] crl: no CRL at" in served.stderr
    assert "Traceback" not in served.stderr


# -- while it runs -------------------------------------------------------------------------------


@pytest.fixture
def revoked_network(tmp_path):
    """A running network in which the CA has revoked sz-market (CRL number 2 in force)."""
    net = start_network(tmp_path / "net")
    try:
        CertificateAuthority.open(net.layout.ca_folder).revoke(REVOKED, "keyCompromise")
        yield net
    finally:
        net.close()


def _still_in_force(net) -> None:
    """The revocation holds, and everyone else is served."""
    with pytest.raises(errors.Unauthenticated) as refused:
        list(net.agency("sz-market").agencies())
    assert refused.value.reason == "CERTIFICATE_REVOKED"
    assert len(list(net.admin().agencies())) == 3
    assert len(list(net.agency("gd-health").agencies())) == 3


def _crl_errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "govshare.identity" and r.levelno == logging.ERROR]


@pytest.mark.parametrize("problem", ["missing", "half-copied", "empty", "foreign key",
                                     "foreign issuer", "older"])
def test_a_bad_crl_file_leaves_the_last_good_crl_in_force(revoked_network, caplog, problem):
    net = revoked_network
    ca = CertificateAuthority.open(net.layout.ca_folder)
    crl = net.layout.ca_folder / "crl.pem"
    good = crl.read_bytes()
    _still_in_force(net)
    other = ec.generate_private_key(ec.SECP256R1())
    stranger = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "another CA")])
    caplog.set_level(logging.INFO, logger="govshare.identity")

    if problem == "missing":
        crl.unlink()
    else:
        _write(crl, {"half-copied": good[:len(good) // 2], "empty": b"",
                     "foreign key": _crl_pem(ca, key=other),
                     "foreign issuer": _crl_pem(ca, issuer=stranger),
                     "older": _crl_pem(ca, number=1)}[problem])
    for _ in range(3):
        _still_in_force(net)

    assert len(_crl_errors(caplog)) == 1, _crl_errors(caplog)  # once per change of the file
    assert "keeping CRL number 2" in _crl_errors(caplog)[0]

    # The operator puts the good CRL back; the CA's next one is taken at once.
    _write(crl, good)
    ca.revoke("urn:govshare:agency:zj-stats")
    with pytest.raises(errors.Unauthenticated):
        list(net.agency("zj-stats").agencies())
    _still_in_force(net)
    assert len(_crl_errors(caplog)) == 1


def test_an_expired_crl_fails_every_call_closed_until_the_ca_re_signs_it(tmp_path):
    clock = MovableClock()
    layout = lay_out(tmp_path / "net", AGENCIES)  # a CRL of the CA's default 7 days
    server = create_server(config_module.load(layout.config_path), clock=clock)
    server.start()
    net = Network(layout, server)
    try:
        net.register(AGENCIES[0])
        health, admin = net.agency("gd-health"), net.admin()
        assert list(health.agencies())
        clock.offset = timedelta(days=8)  # past the CRL's nextUpdate (7 days)

        for client in (health, admin, net.auditor()):
            with pytest.raises(errors.Unavailable) as refused:
                list(client.agencies())
            assert refused.value.reason == "CRL_EXPIRED"
            assert "govshare certs crl" in str(refused.value)
        leaf = last_leaf(net)
        assert leaf["outcome"] == "REFUSED" and "CRL_EXPIRED" in leaf["record"]

        # The CA re-signs it (govshare certs crl): served again.
        CertificateAuthority.open(net.layout.ca_folder).renew_crl(now=clock())
        assert len(list(health.agencies())) == 1
        assert len(list(admin.agencies())) == 1
    finally:
        net.close()
