"""The domain objects stand on the parts they are built from, with no Gateway: the directory,
the catalog, the exchange and the watches, wired here by hand over real SQLite, the national CA's
certificates and CRL, the gateway's signing key, and the unit of work with its audit log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from gateway import config
from gateway.audit.log import AuditLog
from gateway.blobs import BlobStore
from gateway.catalog import Catalog, DatasetCache
from gateway.directory import Directory, DirectoryCache
from gateway.events import Events
from gateway.exchange import Exchange
from gateway.identity import Authenticator
from gateway.paging import PageTokens
from gateway.statements import StatementOpener
from gateway.storage import Database
from gateway.unit_of_work import UnitOfWork
from gateway.v1 import envelope_pb2
from govshare import envelopes, errors
from govshare.signing import SigningKey, VerifyKey
from govshare.transparency import note
from tests.support.domain import Calls, lay_out_network
from tests.support.exchange import MovableClock
from tests.support.network import AGENCIES

ORIGIN = "domain.test/log"
OWNER, REQUESTER = "gd-health", "sz-market"


@dataclass
class Wiring:
    """The domain objects and what they read, built as Gateway._wire_domain builds them."""

    db: Database
    authenticator: Authenticator
    directory: Directory
    catalog: Catalog
    exchange: Exchange
    events: Events


@pytest.fixture
def calls(tmp_path: Path) -> Iterator[Calls]:
    """The calls of the network's agencies and administrator to domain objects wired by hand
    from the parts each uses (the network's own CA, CRL and gateway signing key)."""
    layout = lay_out_network(tmp_path / "net")
    settings = config.load(layout.config_path)
    clock = MovableClock()
    ca = x509.load_pem_x509_certificate(settings.path(settings.tls.ca).read_bytes())
    signing_key = SigningKey.from_pem(settings.path(settings.tls.signing_key).read_bytes())
    db = Database(tmp_path / "domain.db")
    log = AuditLog(db, note.NoteSigner(ORIGIN, SigningKey.generate()), ORIGIN,
                   checkpoint_file=tmp_path / "checkpoint", clock=clock)
    work = UnitOfWork(db, log, clock=clock)
    log.check()
    log.start(work)
    blobs = BlobStore(tmp_path / "blobs")
    blobs.recover(())
    authenticator = Authenticator(ca, settings.path(settings.tls.crl), clock)
    agencies, datasets, tokens = DirectoryCache(db), DatasetCache(db), PageTokens()
    statements = StatementOpener(agencies, authenticator)
    directory = Directory(db, work, agencies, statements, ca, settings.limits, tokens,
                          None)
    catalog = Catalog(db, work, datasets, blobs, statements, settings.limits, settings.exchange,
                      tokens)
    exchange = Exchange(db, work, datasets, agencies, catalog, statements, settings.exchange,
                        signing_key, settings.limits, tokens)
    events = Events(db, directory, authenticator, catalog, clock)
    try:
        yield Calls(layout, clock, Wiring(db, authenticator, directory, catalog, exchange, events))
    finally:
        work.close()
        log.close()
        db.close()


def test_a_directory_built_from_its_parts_registers_an_agency(calls):
    directory, spec = calls.wired.directory, AGENCIES[0]
    with pytest.raises(errors.PermissionDenied):
        calls.call(spec.id, "directory.get")
    assert calls.register(spec.id, spec.display_name, spec.region_code).state == "ACTIVE"
    assert directory.registered(calls.call(spec.id, "directory.get").caller).id == spec.id


def test_a_catalog_and_an_exchange_built_from_their_parts_publish_and_grant(calls):
    calls.register_all()
    dataset = calls.publish(OWNER, "beds", sharing_type="CONDITIONAL").dataset
    seen = calls.wired.catalog.get_visible(calls.call(REQUESTER, "catalog.get"), dataset)
    assert (seen.name, seen.latest_version) == (dataset, 1)

    asked = calls.ask(REQUESTER, dataset)
    assert (asked.request.state, asked.grant) == ("PENDING", None)
    decided = calls.decide(OWNER, asked.request.name)
    assert decided.request.state == "APPROVED"
    # The grant is signed with the gateway's key: its certificate verifies it.
    certificate = calls.layout.certs("gateway") / "signing.pem"
    envelopes.check_sealed(envelope_pb2.Envelope.FromString(decided.grant.signed_statement),
                           VerifyKey.from_certificate(certificate.read_bytes()), envelopes.GRANT)


def test_watches_built_from_their_parts_tell_each_agency_its_events(calls):
    calls.register_all()
    dataset = calls.publish(OWNER, "beds", sharing_type="CONDITIONAL").dataset
    request = calls.ask(REQUESTER, dataset).request.name
    calls.decide(OWNER, request)
    assert calls.watch(OWNER) == [
        ("EVENT_TYPE_DATASET_VERSION_PUBLISHED", f"{dataset}/versions/1"),
        ("EVENT_TYPE_ACCESS_REQUEST_CREATED", request)]
    assert calls.watch(REQUESTER) == [("EVENT_TYPE_ACCESS_REQUEST_APPROVED", request)]
