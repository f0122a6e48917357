"""Impersonation and tampering, through a real gateway: each attempt is refused with its status
and reason, and leaves nothing behind but its refusal's audit event.

The three statements agencies sign (a manifest, an access request, a decision) go through the
same attacks: signed by someone other than the TLS caller, by an unknown key, altered by one
byte, signed with a revoked signing certificate, or dated outside the clock-skew window.
Receipts and manifests altered on their way to the requester are refused by the SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from cryptography import x509

from agencies import errors
from agencies.client import AgencyClient
from certs.ca import CertificateAuthority
from gateway.v1 import envelope_pb2, exchange_pb2
from govshare import envelopes
from govshare.signing import SigningKey
from tests.support import security as support
from tests.support.exchange import ask, assert_only_refusal, counts, publish

DENIED = grpc.StatusCode.PERMISSION_DENIED
APPROVE = exchange_pb2.DECISION_OUTCOME_APPROVE


@dataclass
class Statement:
    """A statement the caller signs, and how the caller sends it."""

    action: str
    payload_type: str
    message: Any
    caller: AgencyClient
    send: Callable[[envelope_pb2.Envelope], Any]

    def sealed(self, key: SigningKey | None = None) -> envelope_pb2.Envelope:
        return support.sealed(key or self.caller.signing_key, self.payload_type, self.message)


def manifest_statement(network: Any) -> Statement:
    health = network.agency("gd-health")
    return Statement("catalog.publish", envelopes.MANIFEST,
                     support.manifest(health.dataset_name("beds")), health,
                     lambda envelope: health.upload(envelope, [support.CONTENT],
                                                    len(support.CONTENT)))


def access_request_statement(network: Any) -> Statement:
    beds = publish(network.agency("gd-health"), "beds", sharing_type="CONDITIONAL")
    market = network.agency("sz-market")
    message = market.access_request_statement(
        beds, purpose="STATISTICS", purpose_text="market survey",
        legal_basis="Statistics Law of the PRC, article 7")
    return Statement("exchange.request.create", envelopes.ACCESS_REQUEST, message, market,
                     market.send_access_request)


def decision_statement(network: Any) -> Statement:
    health = network.agency("gd-health")
    beds = publish(health, "beds", sharing_type="CONDITIONAL")
    pending = ask(network.agency("sz-market"), beds).access_request.name
    return Statement("exchange.request.approve", envelopes.DECISION,
                     support.decision(pending, APPROVE), health,
                     lambda envelope: _approve(health, pending, envelope))


def _approve(client: AgencyClient, name: str, envelope: envelope_pb2.Envelope) -> Any:
    request = exchange_pb2.ApproveAccessRequestRequest(name=name, signed_decision=envelope)
    return client._call(client.exchange.ApproveAccessRequest, request)


STATEMENTS = pytest.mark.parametrize(
    "make", [manifest_statement, access_request_statement, decision_statement],
    ids=["manifest", "access-request", "decision"])


def refused(network: Any, call: Callable[[], Any], code: grpc.StatusCode, reason: str,
            action: str) -> errors.GovshareError:
    """Run `call`, expect the refusal, and check it left only its audit event."""
    before = counts(network)
    blobs = sorted(network.gateway.blobs.root.rglob("*"))
    with pytest.raises(errors.GovshareError) as caught:
        call()
    assert (caught.value.code, caught.value.reason) == (code, reason), caught.value
    assert_only_refusal(network, before, action, reason)
    assert sorted(network.gateway.blobs.root.rglob("*")) == blobs
    return caught.value


# -- every signed statement ----------------------------------------------------------------------


@STATEMENTS
def test_the_honest_statement_is_accepted(network, make):
    statement = make(network)
    statement.send(statement.sealed())


@STATEMENTS
def test_signed_by_another_agency_than_the_tls_caller(network, make):
    statement = make(network)
    other = network.agency("zj-stats").signing_key
    refused(network, lambda: statement.send(statement.sealed(other)), DENIED,
            "SIGNER_NOT_CALLER", statement.action)


@STATEMENTS
def test_signed_by_a_key_no_agency_holds(network, make):
    statement = make(network)
    refused(network, lambda: statement.send(statement.sealed(SigningKey.generate())), DENIED,
            "SIGNER_UNKNOWN", statement.action)


@STATEMENTS
@pytest.mark.parametrize("part", ["payload", "signature"])
def test_one_changed_byte(network, make, part):
    statement = make(network)
    envelope = statement.sealed()
    if part == "payload":
        envelope.payload = support.flip_byte(envelope.payload)
    else:
        envelope.signatures[0].signature = support.flip_byte(envelope.signatures[0].signature)
    refused(network, lambda: statement.send(envelope), DENIED, "SIGNATURE_INVALID",
            statement.action)


@STATEMENTS
def test_signed_with_a_revoked_signing_certificate(network, make):
    statement = make(network)
    caller = statement.caller
    pem = (network.layout.certs(caller.identity.id) / "signing.pem").read_bytes()
    serial = x509.load_pem_x509_certificate(pem).serial_number
    CertificateAuthority.open(network.layout.ca_folder).revoke(f"{serial:x}",
                                                               reason="keyCompromise")
    refused(network, lambda: statement.send(statement.sealed()), DENIED,
            "SIGNING_CERTIFICATE_REVOKED", statement.action)
    assert caller.agency(caller.name).name == caller.name  # its TLS certificate still works


@STATEMENTS
@pytest.mark.parametrize("direction", [-1, 1], ids=["past", "future"])
def test_dated_outside_the_clock_skew_window(network, make, direction):
    statement = make(network)
    skew = network.gateway.config.exchange.clock_skew_seconds
    statement.message.create_time.CopyFrom(
        support.stamp(timedelta(seconds=direction * (skew + 60))))
    refused(network, lambda: statement.send(statement.sealed()),
            grpc.StatusCode.INVALID_ARGUMENT, "CLOCK_SKEW", statement.action)


# -- statements that claim what the caller may not -----------------------------------------------


def test_manifest_for_another_agencys_dataset(network):
    market = network.agency("sz-market")
    envelope = support.sealed(market.signing_key, envelopes.MANIFEST,
                              support.manifest("agencies/gd-health/datasets/beds"))
    refused(network, lambda: market.upload(envelope, [support.CONTENT], len(support.CONTENT)),
            DENIED, "NOT_PUBLISHER", "catalog.publish")


def test_access_request_in_another_agencys_name(network):
    statement = access_request_statement(network)
    statement.message.requester = "agencies/zj-stats"
    error = refused(network, lambda: statement.send(statement.sealed()), DENIED,
                    "REQUESTER_NOT_CALLER", statement.action)
    assert error.metadata["field"] == "signed_statement.requester"


def test_access_request_under_another_agencys_parent(network):
    statement = access_request_statement(network)
    request = exchange_pb2.CreateAccessRequestRequest(parent="agencies/zj-stats",
                                                      signed_statement=statement.sealed())
    market = statement.caller
    refused(network, lambda: market._call(market.exchange.CreateAccessRequest, request), DENIED,
            "PARENT_NOT_CALLER", statement.action)


@pytest.mark.parametrize("decider", ["sz-market", "zj-stats"], ids=["requester", "stranger"])
def test_decision_signed_by_a_non_owner(network, decider):
    beds = publish(network.agency("gd-health"), "beds", sharing_type="CONDITIONAL")
    pending = ask(network.agency("sz-market"), beds).access_request.name
    client = network.agency(decider)
    envelope = support.sealed(client.signing_key, envelopes.DECISION,
                              support.decision(pending, APPROVE))
    refused(network, lambda: _approve(client, pending, envelope), DENIED, "NOT_OWNER",
            "exchange.request.approve")


# -- replays -----------------------------------------------------------------------------------


def test_request_id_replayed_with_another_payload(network):
    statement = access_request_statement(network)
    first = statement.send(statement.sealed()).access_request
    before = counts(network)
    assert statement.send(statement.sealed()).access_request.name == first.name  # a retry
    assert counts(network) == before
    statement.message.purpose_text = "a different purpose under the same request id"
    refused(network, lambda: statement.send(statement.sealed()),
            grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED", statement.action)


def test_decision_replayed(network):
    statement = decision_statement(network)
    envelope = statement.sealed()
    statement.send(envelope)
    refused(network, lambda: statement.send(envelope), grpc.StatusCode.FAILED_PRECONDITION,
            "REQUEST_NOT_PENDING", statement.action)


def test_decision_moved_to_another_request(network):
    statement = decision_statement(network)
    other = ask(network.agency("zj-stats"), "agencies/gd-health/datasets/beds")
    health = statement.caller
    envelope = statement.sealed()
    error = refused(network, lambda: _approve(health, other.access_request.name, envelope),
                    grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", statement.action)
    assert error.metadata["field"] == "signed_decision.access_request"


# -- what the requester receives -----------------------------------------------------------------


@pytest.mark.parametrize("part", ["receipt", "start"])
def test_fetch_altered_in_transit_is_refused_by_the_sdk(network, tmp_path, part):
    beds = publish(network.agency("gd-health"), "beds", classification="PUBLIC")
    market = network.agency("sz-market")
    ask(market, beds)
    support.restub(market, grpc.intercept_channel(market.channel, support.Tamperer(part)))
    folder = tmp_path / "received"
    folder.mkdir()
    with pytest.raises(errors.VerificationError) as caught:
        market.fetch(beds, to=folder / "beds.csv")
    assert ("receipt" if part == "receipt" else "manifest") in str(caught.value)
    assert list(folder.iterdir()) == []  # neither the data nor a partial file is kept
