"""A gateway that is a network member: it starts only on a valid configuration naming it, takes
newer ones from its file and refuses the rest (audited), fails closed once the one it holds
expires, serves the one it holds, and applies its CRL; the SDK verifies what it serves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from agencies import errors
from agencies.client import AgencyClient
from gateway import config as config_module
from gateway.federation import CONFIGURATION_LOADED, CONFIGURATION_REFUSED
from gateway.server import StartError, create_server
from gateway.v1 import network_pb2, network_pb2_grpc
from govshare.signing import sha256
from tests.support.exchange import MovableClock, ask, publish
from tests.support.federation import (
    NETWORK_ID,
    Membership,
    lay_out_member,
    start_member_network,
)
from tests.support.network import Network
from tests.support.security import flip_byte


@pytest.fixture
def member(tmp_path: Path) -> Iterator[tuple[Network, Membership, MovableClock]]:
    clock = MovableClock()
    network, membership = start_member_network(tmp_path / "net", clock)
    try:
        yield network, membership, clock
    finally:
        network.close()


def network_leaves(network: Network) -> list[tuple[str, str, str]]:
    """(action, outcome, reason) of the gateway's network configuration events, in order."""
    rows = network.gateway.db.reader().execute(
        "SELECT action, outcome, record FROM audit_leaves WHERE action LIKE 'network.%'"
        " ORDER BY leaf_index").fetchall()
    return [(action, outcome, record.decode()) for action, outcome, record in rows]


def served(network: Network) -> network_pb2.SignedNetworkConfiguration:
    client = network.auditor()
    return network_pb2_grpc.NetworkServiceStub(client.channel).GetNetworkConfiguration(
        network_pb2.GetNetworkConfigurationRequest(name="networkConfiguration"),
        timeout=10).network_configuration


def start_refused(layout, match: str) -> None:
    with pytest.raises(StartError, match=match) as refused:
        create_server(config_module.load(layout.config_path))
    assert "[network] configuration_file" in str(refused.value)


def test_start_refuses_a_missing_unverifiable_expired_or_foreign_configuration(tmp_path):
    layout, membership = lay_out_member(tmp_path / "net")
    start_refused(layout, "cannot read .*network.pb")

    good = membership.signed(1).SerializeToString()
    membership.write(flip_byte(good, len(good) // 2))
    start_refused(layout, "network.pb: ")

    membership.write(membership.signed(1, now=datetime.now(UTC) - timedelta(days=2)))
    start_refused(layout, "expired at .* fetch a newer one")

    other = tmp_path / "bj"
    membership.ca.issue_gateway(other, "bj-gateway")
    membership.write(membership.signed(1, members=[membership.member(other, "bj-gateway")]))
    start_refused(layout, "lists no member 'gateway'")

    own_origin, membership.audit_origin = membership.audit_origin, "elsewhere.example/audit"
    membership.write(membership.signed(1))
    start_refused(layout, "another audit_origin .*audit_verifier_key")

    membership.audit_origin = own_origin
    membership.write(membership.signed(1))
    server = create_server(config_module.load(layout.config_path))
    server.stop(grace=0)


def test_refresh_takes_a_newer_configuration_and_refuses_older_tampered_or_equivocal(member):
    network, membership, _ = member
    first = served(network)
    assert [(a, o) for a, o, _ in network_leaves(network)] == [(CONFIGURATION_LOADED, "ALLOWED")]
    assert network.gateway.network.refresh() is False  # the file has not changed

    second = membership.signed(2)
    membership.write(second)
    assert network.gateway.network.refresh() is True
    assert served(network).SerializeToString() == second.SerializeToString()

    membership.write(first)  # an older one put back
    assert network.gateway.network.refresh() is False
    membership.write(flip_byte(membership.signed(3).SerializeToString(), 300))
    assert network.gateway.network.refresh() is False
    equivocal = membership.signed(2, now=datetime.now(UTC) - timedelta(minutes=1))
    membership.write(equivocal)  # version 2 again, other bytes
    assert network.gateway.network.refresh() is False
    membership.write(second)  # the very one held: nothing to take, nothing to refuse
    assert network.gateway.network.refresh() is False

    assert served(network).SerializeToString() == second.SerializeToString()
    leaves = network_leaves(network)
    assert [(a, o) for a, o, _ in leaves] == [
        (CONFIGURATION_LOADED, "ALLOWED"), (CONFIGURATION_LOADED, "ALLOWED"),
        (CONFIGURATION_REFUSED, "REFUSED"), (CONFIGURATION_REFUSED, "REFUSED"),
        (CONFIGURATION_REFUSED, "REFUSED")]
    assert sha256(second.envelope.payload).hex() in leaves[1][2]
    assert "NETWORK_CONFIGURATION_NOT_NEWER" in leaves[2][2]
    assert "NETWORK_CONFIGURATION_SIGNATURE_INVALID" in leaves[3][2] \
        or "NETWORK_CONFIGURATION_INVALID" in leaves[3][2]
    assert "NETWORK_CONFIGURATION_NOT_NEWER" in leaves[4][2]
    assert sha256(equivocal.envelope.payload).hex() in leaves[4][2]


def test_an_expired_configuration_fails_calls_closed_until_a_newer_one_arrives(member):
    network, membership, clock = member
    health = network.agency("gd-health")
    assert list(health.agencies())
    clock.offset = timedelta(days=1, minutes=1)  # past the configuration's day

    for client in (health, network.admin(), network.auditor()):
        with pytest.raises(errors.FailedPrecondition) as refused:
            list(client.agencies())
        assert refused.value.reason == "NETWORK_CONFIGURATION_EXPIRED"
        assert "[network] configuration_file" in refused.value.message
    assert served(network).envelope.payload  # its own read is still served

    membership.write(membership.signed(2, now=clock()))
    assert network.gateway.network.refresh() is True
    assert len(list(health.agencies())) == 3


def test_a_revocation_only_in_the_configuration_reaches_the_gateway(member):
    network, membership, _ = member
    crl_file = network.layout.ca_folder / "crl.pem"
    kept = crl_file.read_bytes()
    membership.ca.revoke("urn:govshare:agency:zj-stats")
    revoked_crl = membership.ca.crl().public_bytes(Encoding.DER)
    crl_file.write_bytes(kept)  # the gateway's [tls] crl does not know of it
    stats = network.agency("zj-stats")
    assert list(stats.agencies())

    membership.write(membership.signed(2, crl_der=revoked_crl))
    assert network.gateway.network.refresh() is True
    with pytest.raises(errors.Unauthenticated) as refused:
        list(stats.agencies())
    assert refused.value.reason == "CERTIFICATE_REVOKED"


def test_the_sdk_verifies_and_holds_the_configuration_and_refuses_a_replay(member):
    network, membership, _ = member
    health = network.agency("gd-health")
    held = health.network_configuration()
    assert held is not None and held.version == 1
    assert held.signed.SerializeToString() == served(network).SerializeToString()

    newer = membership.signed(2)  # held from elsewhere; the gateway still serves version 1
    replayed = AgencyClient(network.target, network.layout.certs("gd-health"),
                            server_name="localhost", network_configuration=newer)
    network.clients.append(replayed)
    assert replayed.network_configuration().version == 2
    with pytest.raises(errors.NetworkConfigurationRefused) as refused:
        replayed.network_configuration(refresh=True)
    assert refused.value.reason == "NETWORK_CONFIGURATION_NOT_NEWER"
    assert replayed.network_configuration().version == 2  # what it held stays


def test_the_sdk_refuses_a_gateway_dropped_from_the_network_once_its_key_is_revoked(
        member, tmp_path):
    network, membership, _ = member
    owner, requester = network.agency("gd-health"), network.agency("zj-stats")
    dataset = publish(owner, "beds")
    ask(requester, dataset)
    assert requester.fetch(dataset, tmp_path / "first.csv").path.exists()

    # The gateway's signing key is compromised: the CA revokes it, and the network authority
    # publishes a configuration without the gateway, carrying that CRL.
    other = tmp_path / "bj"
    membership.ca.issue_gateway(other, "bj-gateway")
    crl_file = network.layout.ca_folder / "crl.pem"
    kept = crl_file.read_bytes()
    membership.ca.revoke("urn:govshare:gateway:gateway")
    newer = membership.signed(2, members=[membership.member(other, "bj-gateway")])
    crl_file.write_bytes(kept)  # the gateway itself serves on, unaware
    informed = AgencyClient(network.target, network.layout.certs("zj-stats"),
                            server_name="localhost", network_configuration=newer)
    network.clients.append(informed)
    # Refused before the fetch is sent: the configuration names no member at its address.
    with pytest.raises(errors.GatewayNotMember) as refused:
        informed.fetch(dataset, tmp_path / "second.csv")
    assert refused.value.reason == "GATEWAY_NOT_A_MEMBER"
    assert not list(tmp_path.glob("second.csv*"))


def _revoke_the_authority(membership: Membership) -> network_pb2.SignedNetworkConfiguration:
    """The CA revokes the authority ([tls] crl now says so); a configuration its stolen key signs,
    carrying the CRL from before (version 2)."""
    before = membership.ca.crl().public_bytes(Encoding.DER)
    membership.ca.revoke(f"urn:govshare:network:{NETWORK_ID}", "keyCompromise")
    return membership.signed(2, crl_der=before)


def test_authority_revoked_in_the_gateways_crl_is_refused(member, tmp_path):
    network, membership, _ = member
    membership.write(_revoke_the_authority(membership))
    assert network.gateway.network.refresh() is False
    assert network.gateway.network.current.version == 1
    assert "NETWORK_CONFIGURATION_SIGNATURE_INVALID" in network_leaves(network)[-1][2]

    layout, fresh = lay_out_member(tmp_path / "fresh")  # and a gateway starting on it
    fresh.write(_revoke_the_authority(fresh))
    start_refused(layout, "network authority certificate .* is revoked")


def test_not_yet_valid_file_is_taken_once_valid(member):
    network, membership, clock = member
    ahead = membership.signed(2, now=datetime.now(UTC) + timedelta(minutes=10))
    membership.write(ahead)  # signed by an authority whose clock runs ahead
    assert network.gateway.network.refresh() is False
    assert network.gateway.network.refresh() is False  # tried again, still too early

    clock.offset = timedelta(minutes=6)
    assert network.gateway.network.refresh() is True
    assert served(network).SerializeToString() == ahead.SerializeToString()
    assert [(a, o) for a, o, _ in network_leaves(network)] == [
        (CONFIGURATION_LOADED, "ALLOWED"), (CONFIGURATION_REFUSED, "REFUSED"),
        (CONFIGURATION_LOADED, "ALLOWED")]  # refused once, not at every retry
    assert "NETWORK_CONFIGURATION_NOT_YET_VALID" in network_leaves(network)[1][2]
