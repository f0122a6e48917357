"""A domain object stands on the parts it is built from: the directory, with no Gateway, over
real SQLite, the national CA's certificates and CRL, and the unit of work with its audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from certs.ca import CertificateAuthority
from gateway import config
from gateway.audit.log import AuditLog
from gateway.context import Call
from gateway.directory import Directory, DirectoryCache
from gateway.identity import Authenticator
from gateway.network import NetworkLayout, lay_out
from gateway.paging import PageTokens
from gateway.statements import StatementOpener
from gateway.storage import Database
from gateway.unit_of_work import UnitOfWork
from govshare import errors
from govshare.signing import SigningKey
from govshare.transparency import note
from tests.support.domain import LocalTransport
from tests.support.exchange import MovableClock
from tests.support.network import AGENCIES

ORIGIN = "directory.test/log"


@pytest.fixture
def layout(tmp_path: Path) -> NetworkLayout:
    laid_out = lay_out(tmp_path / "net", AGENCIES)
    CertificateAuthority.open(laid_out.ca_folder).renew_crl(validity_days=3650)
    return laid_out


@pytest.fixture
def parts(layout: NetworkLayout,
          tmp_path: Path) -> Iterator[tuple[Directory, Authenticator, MovableClock]]:
    """A Directory wired by hand from what it uses, the authenticator of its callers and the
    clock of both."""
    settings = config.load(layout.config_path)
    clock = MovableClock()
    ca = x509.load_pem_x509_certificate(settings.path(settings.tls.ca).read_bytes())
    db = Database(tmp_path / "directory.db")
    log = AuditLog(db, note.NoteSigner(ORIGIN, SigningKey.generate()), ORIGIN,
                   checkpoint_file=tmp_path / "checkpoint", clock=clock)
    work = UnitOfWork(db, log, clock=clock)
    log.check()
    log.start(work)
    authenticator = Authenticator(ca, settings.path(settings.tls.crl), clock)
    agencies = DirectoryCache(db)
    try:
        yield Directory(db, work, agencies, StatementOpener(agencies, authenticator), ca,
                        settings.limits, PageTokens()), authenticator, clock
    finally:
        work.close()
        log.close()
        db.close()


def test_a_directory_built_from_its_parts_registers_an_agency(layout, parts):
    directory, authenticator, clock = parts
    spec = AGENCIES[0]

    def call(who: str) -> Call:
        caller = authenticator.authenticate((layout.certs(who) / "tls.pem").read_bytes())
        return Call(caller, "directory.register", LocalTransport(), clock())

    with pytest.raises(errors.PermissionDenied):
        directory.registered(call(spec.id).caller)
    pem = (layout.certs(spec.id) / "signing.pem").read_text()
    row = directory.register(call("admin"), spec.id, spec.display_name, spec.region_code, pem)
    assert row.state == "ACTIVE"
    assert directory.registered(call(spec.id).caller).id == spec.id
