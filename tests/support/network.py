"""A network on disk with its gateway running on 127.0.0.1:0, and the agencies tests use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
