"""Shared fixtures: a real network on disk and a real gateway on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agencies.client import AdminClient, AgencyClient, BaseClient
from agencies.sim.roster import AgencySpec
from gateway import config as config_module
from gateway.network import NetworkLayout, lay_out
from gateway.server import GatewayServer, create_server

AGENCIES = [
    AgencySpec("gd-health", "Guangdong Provincial Health Commission", "440000"),
    AgencySpec("sz-market", "Shenzhen Market Regulation Bureau", "440300"),
    AgencySpec("zj-stats", "Zhejiang Provincial Bureau of Statistics", "330000"),
]


@dataclass
class Network:
    """A laid-out network with its gateway running and its agencies registered."""

    layout: NetworkLayout
    server: GatewayServer
    clients: list[BaseClient] = field(default_factory=list)
    stopped: bool = False

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def gateway(self):
        return self.server.gateway

    def _track(self, client: BaseClient) -> BaseClient:
        self.clients.append(client)
        return client

    def agency(self, agency_id: str) -> AgencyClient:
        return self._track(AgencyClient(self.target, self.layout.certs(agency_id),
                                        server_name="localhost"))

    def admin(self) -> AdminClient:
        return self._track(AdminClient(self.target, self.layout.certs("admin"),
                                       server_name="localhost"))

    def auditor(self) -> BaseClient:
        return self._track(BaseClient(self.target, self.layout.certs("auditor"),
                                      server_name="localhost"))

    def register(self, spec: AgencySpec) -> None:
        pem = (self.layout.certs(spec.id) / "signing.pem").read_text()
        self.admin().register_agency(spec.id, spec.display_name, spec.region_code, pem)

    def close(self) -> None:
        """Close the clients and stop the gateway (idempotent)."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        if not self.stopped:
            self.stopped = True
            self.server.stop(grace=1)


def start_network(root: Path, agencies: list[AgencySpec] = AGENCIES, *, register: bool = True,
                  **sections: dict) -> Network:
    """Lay out a network under `root`, start its gateway, register `agencies`."""
    layout = lay_out(root, agencies, **sections)
    server = create_server(config_module.load(layout.config_path))
    server.start()
    network = Network(layout, server)
    if register:
        for spec in agencies:
            network.register(spec)
    return network


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    net = start_network(tmp_path / "net")
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def network_factory(tmp_path: Path) -> Iterator[Callable[..., Network]]:
    """Start networks with custom agencies or config sections: factory(name, agencies, **cfg)."""
    started: list[Network] = []

    def make(name: str = "net", agencies: list[AgencySpec] = AGENCIES, **sections: dict) -> Network:
        net = start_network(tmp_path / name, agencies, **sections)
        started.append(net)
        return net

    yield make
    for net in started:
        net.close()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`govshare demo` run once per session (small large dataset): its folder and output."""
    from click.testing import CliRunner

    from gateway.cli import cli

    root = tmp_path_factory.mktemp("demo") / "net"
    result = CliRunner().invoke(cli, ["demo", "--dir", str(root), "--large-mib", "2"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root, result.output
