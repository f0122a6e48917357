"""Certificates over their whole life: a revoked TLS certificate ends the streams it holds open,
signing certificates that have expired or been revoked neither register nor sign, and the gateway
does not start with a signing certificate that is not its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from agencies import errors
from agencies.sim.roster import AgencySpec
from certs.ca import CertificateAuthority
from gateway import config as config_module
from gateway.network import add_agency, lay_out
from gateway.server import StartError, create_server
from tests.support.exchange import (
    ask,
    assert_only_refusal,
    counts,
    publish,
    start_clocked_network,
)
from tests.support.fetching import BIG
from tests.support.network import AGENCIES


def _serial(network, agency_id: str, purpose: str) -> str:
    uri = f"urn:govshare:agency:{agency_id}"
    ca = CertificateAuthority.open(network.layout.ca_folder)
    return next(r.serial for r in ca.list() if r.identity == uri and r.purpose == purpose)


def _revoke(network, agency_id: str, purpose: str) -> None:
    CertificateAuthority.open(network.layout.ca_folder).revoke(
        _serial(network, agency_id, purpose), "keyCompromise")


# -- a revoked TLS certificate ends its streams ----------------------------------------------------


def test_revocation_stops_a_running_fetch(network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "big-table", BIG, media_type="OCTET_STREAM")
    ask(market, dataset)
    revoked = []

    def revoke_once(done: int, total: int) -> None:
        if not revoked:
            revoked.append(_revoke(network, "sz-market", "tls"))

    with pytest.raises(errors.Unauthenticated) as refused:
        market.fetch(dataset, tmp_path / "big.bin", progress=revoke_once)

    assert refused.value.reason == "CERTIFICATE_REVOKED"
    assert not (tmp_path / "big.bin").exists()
    conn = network.gateway.db.reader()
    assert conn.execute("SELECT state FROM exchanges").fetchall() == [("BROKEN",)]
    refusals = conn.execute("SELECT action, record FROM audit_leaves WHERE outcome = 'REFUSED'"
                            " AND action LIKE 'exchange.fetch%'").fetchall()
    assert len(refusals) == 1  # the break is the refusal, audited once
    assert refusals[0][0] == "exchange.fetch.break"
    assert b"CERTIFICATE_REVOKED" in refusals[0][1]


def test_revocation_ends_a_running_watch(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    publish(health, "earlier")
    last = network.gateway.db.reader().execute("SELECT MAX(seq) FROM events").fetchone()[0]
    own = publish(market, "watch-opened")
    stream = market.watch(cursor=str(last))
    assert next(stream).dataset == own  # the watch is open at the gateway
    leaves = network.gateway.log.checkpoint().tree_size

    _revoke(network, "sz-market", "tls")
    publish(health, "beds")  # visible to sz-market: the watch would report it

    with pytest.raises(errors.Unauthenticated) as refused:
        next(stream)
    assert refused.value.reason == "CERTIFICATE_REVOKED"
    conn = network.gateway.db.reader()
    refusals = conn.execute("SELECT action, record FROM audit_leaves WHERE leaf_index >= ?"
                            " AND outcome = 'REFUSED' AND action LIKE 'exchange.%'",
                            (leaves,)).fetchall()
    assert [action for action, _ in refusals] == ["exchange.watch"]
    assert b"CERTIFICATE_REVOKED" in refusals[0][1]


# -- signing certificates that may no longer sign ------------------------------------------------


def _register(network, folder: Path, agency_id: str = "hn-water"):
    pem = (folder / "signing.pem").read_text()
    return lambda: network.admin().register_agency(agency_id, "Hunan Water Resources", "430000",
                                                   pem)


def _refused(network, call, code: grpc.StatusCode, reason: str, action: str,
             field: str = "agency.signing_certificate_pem") -> None:
    before = counts(network)
    with pytest.raises(errors.GovshareError) as caught:
        call()
    assert (caught.value.code, caught.value.reason) == (code, reason), caught.value
    assert caught.value.metadata["field"] == field
    assert_only_refusal(network, before, action, reason)


def test_register_refuses_a_revoked_signing_certificate(network):
    folder = add_agency(network.layout, AgencySpec("hn-water", "Hunan Water", "430000"))
    _revoke(network, "hn-water", "signing")
    _refused(network, _register(network, folder), grpc.StatusCode.FAILED_PRECONDITION,
             "SIGNING_CERTIFICATE_REVOKED", "directory.register")
    assert network.gateway.agencies.by_id("hn-water") is None


def test_register_refuses_an_expired_signing_certificate(tmp_path):
    net, clock = start_clocked_network(tmp_path / "net")
    try:
        ca = CertificateAuthority.open(net.layout.ca_folder)
        ca.issue_agency("hn-water", tmp_path / "short", validity_days=1)
        foreign = CertificateAuthority.init(tmp_path / "foreign-ca")
        foreign.issue_agency("hn-water", tmp_path / "foreign", validity_days=1)
        clock.offset = timedelta(days=2)  # both have expired; the gateway's CRL has not
        _refused(net, _register(net, tmp_path / "short"), grpc.StatusCode.FAILED_PRECONDITION,
                 "SIGNING_CERTIFICATE_EXPIRED", "directory.register")
        # An expired certificate of another CA is still, first, not the national CA's.
        _refused(net, _register(net, tmp_path / "foreign"), grpc.StatusCode.INVALID_ARGUMENT,
                 "CERTIFICATE_INVALID", "directory.register")
    finally:
        net.close()


def test_a_statement_signed_once_the_signing_certificate_expired_is_refused(tmp_path):
    # A skew window wider than the clock's move, so that only the certificate's expiry counts.
    net, clock = start_clocked_network(tmp_path / "net",
                                       exchange={"clock_skew_seconds": 3 * 86400})
    try:
        ca = CertificateAuthority.open(net.layout.ca_folder)
        ca.issue_agency("hn-water", net.layout.certs("hn-water"), validity_days=1)
        _register(net, net.layout.certs("hn-water"))()
        water = net.agency("hn-water")
        beds = publish(net.agency("gd-health"), "beds", sharing_type="CONDITIONAL")
        publish(water, "levels")  # valid today
        clock.offset = timedelta(days=2)
        _refused(net, lambda: publish(water, "levels"), grpc.StatusCode.PERMISSION_DENIED,
                 "SIGNING_CERTIFICATE_EXPIRED", "catalog.publish", "manifest")
        _refused(net, lambda: ask(water, beds), grpc.StatusCode.PERMISSION_DENIED,
                 "SIGNING_CERTIFICATE_EXPIRED", "exchange.request.create", "signed_statement")
    finally:
        net.close()


# -- the gateway's own signing certificate -------------------------------------------------------


def _start_refused(layout, **tls: Path) -> str:
    config = config_module.load(layout.config_path).replace(tls=tls)
    with pytest.raises(StartError) as refused:
        create_server(config)
    assert not config.path(config.storage.database).exists()  # nothing was touched
    return str(refused.value)


def test_the_gateway_does_not_start_with_a_signing_key_of_another_certificate(tmp_path):
    layout = lay_out(tmp_path / "net", AGENCIES)
    message = _start_refused(layout, signing_key=layout.certs("zj-stats") / "signing.key")
    assert message.startswith("[tls] signing_certificate")
    assert "does not hold the public key of [tls] signing_key" in message


def test_the_gateway_does_not_start_with_an_agency_s_signing_certificate(tmp_path):
    layout = lay_out(tmp_path / "net", AGENCIES)
    agency = layout.certs("zj-stats")
    message = _start_refused(layout, signing_key=agency / "signing.key",
                             signing_certificate=agency / "signing.pem")
    assert "is issued to urn:govshare:agency:zj-stats, not to a gateway" in message


def test_the_gateway_does_not_start_with_an_expired_signing_certificate(tmp_path):
    layout = lay_out(tmp_path / "net", AGENCIES)
    old = tmp_path / "old-gateway"
    CertificateAuthority.open(layout.ca_folder).issue_gateway(
        old, validity_days=1, now=datetime.now(UTC) - timedelta(days=30))
    message = _start_refused(layout, signing_key=old / "signing.key",
                             signing_certificate=old / "signing.pem")
    assert "expired at" in message


def test_the_gateway_does_not_start_with_a_revoked_signing_certificate(tmp_path):
    layout = lay_out(tmp_path / "net", AGENCIES)
    ca = CertificateAuthority.open(layout.ca_folder)
    serial = next(r.serial for r in ca.list()
                  if r.identity.startswith("urn:govshare:gateway:") and r.purpose == "signing")
    ca.revoke(serial, "keyCompromise")
    assert "has been revoked" in _start_refused(layout)


def test_the_gateway_does_not_start_with_an_unreadable_signing_key(tmp_path):
    layout = lay_out(tmp_path / "net", AGENCIES)
    (layout.certs("gateway") / "signing.key").write_text("not a key")
    assert _start_refused(layout).startswith("[tls] signing_key:")
