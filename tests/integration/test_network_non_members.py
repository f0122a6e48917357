"""Gateways that are no network member: a standalone gateway answers the configuration's read with
none (no refusal to audit), one that predates networks does not serve the read at all, and the
SDK fetches and verifies from both as it did before networks, against the CA alone, applying a
configuration it holds already."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager, nullcontext
from datetime import timedelta

import grpc
import pytest

from agencies import errors
from agencies.client import AgencyClient
from gateway.server import register_services
from gateway.v1 import network_pb2, network_pb2_grpc
from tests.support.exchange import ask, publish
from tests.support.federation import Membership
from tests.support.network import Network

TIMEOUT = 10


class _WithoutService:
    """A grpc server as register_services sees it, that leaves one service out."""

    def __init__(self, server: grpc.Server, service: str) -> None:
        self._server = server
        self._service = service

    def add_generic_rpc_handlers(self, handlers) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(h for h in handlers if h.service_name() != self._service))

    def add_registered_method_handlers(self, service: str, handlers) -> None:
        if service != self._service:
            self._server.add_registered_method_handlers(service, handlers)


@contextmanager
def predating_networks(network: Network) -> Iterator[str]:
    """A second real gRPC server on 127.0.0.1:0 over the network's gateway, with its mutual TLS,
    serving every service but NetworkService: the gateway as it was before networks. Yields its
    target."""
    gateway = network.gateway
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    register_services(_WithoutService(server, network_pb2.DESCRIPTOR.services_by_name[
        "NetworkService"].full_name), gateway)
    port = server.add_secure_port("127.0.0.1:0", gateway.credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def client_of(network: Network, target: str, agency_id: str, **options) -> AgencyClient:
    client = AgencyClient(target, network.layout.certs(agency_id), server_name="localhost",
                          **options)
    network.clients.append(client)
    return client


def read_configuration(client: AgencyClient, name: str = "networkConfiguration"
                       ) -> network_pb2.GetNetworkConfigurationResponse:
    stub = network_pb2_grpc.NetworkServiceStub(client.channel)
    return stub.GetNetworkConfiguration(
        network_pb2.GetNetworkConfigurationRequest(name=name), timeout=TIMEOUT)


def leaves_after(network: Network, leaf_index: int) -> list[tuple[str, str, str]]:
    """(actor, action, outcome) of the audit leaves after `leaf_index`, in order."""
    return network.gateway.db.reader().execute(
        "SELECT actor, action, outcome FROM audit_leaves WHERE leaf_index > ?"
        " ORDER BY leaf_index", (leaf_index,)).fetchall()


def last_leaf_index(network: Network) -> int:
    return network.gateway.db.reader().execute(
        "SELECT MAX(leaf_index) FROM audit_leaves").fetchone()[0]


def test_the_read_answers_no_configuration_on_a_gateway_outside_a_network(network):
    health = network.agency("gd-health")
    before = last_leaf_index(network)
    assert not read_configuration(health).HasField("network_configuration")
    assert health.network_configuration() is None
    assert leaves_after(network, before) == []

    with pytest.raises(grpc.RpcError) as refused:
        read_configuration(health, name="networks/cn-national")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "networkConfiguration" in refused.value.details()


def test_fetch_on_a_standalone_gateway_audits_no_refusal(network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "beds", classification="PUBLIC")
    ask(market, dataset, duration=timedelta(days=3))
    granted = last_leaf_index(network)

    assert market.fetch(dataset, tmp_path / "beds.csv").path.exists()
    market.verify_manifest(next(iter(market.versions(dataset))))
    market.network_configuration(refresh=True)  # asked again: still nothing to refuse

    assert leaves_after(network, granted) == [
        ("urn:govshare:agency:sz-market", "exchange.fetch.start", "ALLOWED"),
        ("urn:govshare:agency:sz-market", "exchange.fetch.complete", "ALLOWED"),
    ]


def test_sdk_fetches_from_a_gateway_without_network_service(network, tmp_path):
    with predating_networks(network) as target:
        health, market = (client_of(network, target, agency_id)
                          for agency_id in ("gd-health", "sz-market"))
        with pytest.raises(grpc.RpcError) as unserved:
            read_configuration(market)
        assert unserved.value.code() == grpc.StatusCode.UNIMPLEMENTED

        dataset = publish(health, "beds")
        ask(market, dataset)
        fetched = market.fetch(dataset, tmp_path / "beds.csv")
        market.verify_manifest(next(iter(market.versions(dataset))))

    assert fetched.path.read_bytes() == b"region,beds,doctors\n1,2,3\n"
    assert market.network_configuration() is None


@pytest.mark.parametrize("predating", [False, True], ids=["standalone", "predating-networks"])
def test_a_configuration_held_still_applies_on_a_gateway_outside_a_network(network, tmp_path,
                                                                            predating):
    owner, requester = network.agency("gd-health"), network.agency("zj-stats")
    dataset = publish(owner, "beds")
    ask(requester, dataset)

    # Held from a member gateway: the national CA revoked this gateway's signing certificate.
    membership = Membership(network.layout)
    other = tmp_path / "bj"
    membership.ca.issue_gateway(other, "bj-gateway")
    crl_file = network.layout.ca_folder / "crl.pem"
    kept = crl_file.read_bytes()
    membership.ca.revoke("urn:govshare:gateway:gateway")
    held = membership.signed(1, members=[membership.member(other, "bj-gateway")])
    crl_file.write_bytes(kept)  # the gateway itself serves on, unaware

    with predating_networks(network) if predating else nullcontext(network.target) as target:
        informed = client_of(network, target, "zj-stats", network_configuration=held)
        # Refused before the fetch is sent: the configuration names no member at its address.
        with pytest.raises(errors.GatewayNotMember, match="is no member of network"):
            informed.fetch(dataset, tmp_path / "beds.csv")
        assert informed.network_configuration(refresh=True).version == 1
    assert not (tmp_path / "beds.csv").exists()

