"""The demo network, composed: the gateway side lays the network out in one folder and starts the
gateway, the simulated agencies (`agencies.sim`) run their scenario against it through the SDK
only, and the audit log is rebuilt from the gateway's database at the end.

The simulator never imports the gateway: it gets the gateway's address and the certificate
folders, as an outside system would.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from agencies.sim.roster import roster
from agencies.sim.scenario import Scenario, Step, StepFailed
from gateway import config as config_module
from gateway.audit import verify
from gateway.network import NetworkLayout, lay_out
from gateway.server import GatewayServer, create_server
from govshare.transparency import note


@dataclass
class DemoNetwork:
    """A demo network under `root`: its layout, its gateway and the scenario run against it."""

    layout: NetworkLayout
    port: int
    scenario: Scenario
    server: GatewayServer | None = None

    @classmethod
    def create(cls, root: Path, agency_count: int, large_bytes: int, seed: int) -> DemoNetwork:
        """A network to lay out under `root`, on a loopback port free now."""
        layout, port = NetworkLayout(root), _free_port()
        scenario = Scenario(root, f"127.0.0.1:{port}", layout.root / "certs", agency_count,
                            large_bytes, seed)
        return cls(layout, port, scenario)

    @property
    def root(self) -> Path:
        return self.layout.root

    def steps(self) -> list[Step]:
        return [
            Step("Create the CA, every certificate and gateway.toml", self.lay_out),
            Step("Start the gateway (mutual TLS)", self.start_gateway),
            *self.scenario.steps(),
            Step("Audit log verified", self.verify_audit),
        ]

    def lay_out(self) -> str:
        count = self.scenario.agency_count
        lay_out(self.root, roster(count), listen=f"127.0.0.1:{self.port}")
        return (f"{count} agencies, admin and auditor certificates in {self.root / 'certs'};"
                f" config {self.layout.config_path}")

    def start_gateway(self) -> str:
        self.server = create_server(config_module.load(self.layout.config_path))
        self.server.start()
        return f"listening on {self.scenario.target}; database and blobs in {self.root}"

    def verify_audit(self) -> str:
        """The auditor's verified checkpoint, then the whole log rebuilt from the database."""
        checkpoint = self.scenario.auditor().checkpoint()
        config = config_module.load(self.layout.config_path)
        key = config.path(config.audit.verifier_key_file).read_text().strip()
        report = verify.verify_log(config.path(config.storage.database),
                                   note.NoteVerifier.from_verifier_key(key))
        if not report.ok:
            raise StepFailed(f"the audit log does not verify: {report.first}")
        if (report.tree_size, report.root_hash) != (checkpoint.size, checkpoint.root_hash):
            raise StepFailed("the rebuilt log differs from the checkpoint the auditor verified")
        return (f"{report.tree_size} entries rebuilt from their records, {report.checkpoints} "
                f"signed checkpoints checked; root {report.root_hash.hex()[:16]}… equals the "
                "auditor's verified checkpoint")

    def close(self) -> None:
        """Stop the agencies, close every channel, stop the gateway."""
        self.scenario.close()
        if self.server is not None:
            self.server.stop(grace=1)
            self.server = None


def _free_port() -> int:
    """A port free on loopback now, written into gateway.toml so a restart finds it again."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
