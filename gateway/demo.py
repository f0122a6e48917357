"""The demo, composed. The gateway side lays the network out and runs its gateways, and does what
their operators do; the simulated agencies (`agencies.sim`) run their scenario against them
through the SDK only, and the audit logs are verified at the end.

- `NationalDemo` (`govshare demo`): a national network of four member gateways, each a
  `govshare gateway serve` process of its own folder, witnessing each other's logs; one of
  them is restarted on an older copy of its database, and its witnesses catch it.
- `SingleGatewayDemo` (`govshare demo --single`): one gateway, in this process, serving every
  agency.

The simulator never imports the gateway: it gets each gateway's address and certificate
folders, as an outside system would.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from agencies.sim.national import NationalScenario
from agencies.sim.roster import roster
from agencies.sim.scenario import Home, Scenario, Step, StepFailed
from gateway import config as config_module
from gateway.audit import saved, verify
from gateway.national import REGIONS, NationalLayout, lay_out_national, served_by
from gateway.network import NetworkLayout, free_port, lay_out
from gateway.process import LOG_FILE, STOP_TIMEOUT, GatewayProcess, govshare_command
from gateway.server import GatewayServer, create_server
from gateway.storage import database
from govshare.transparency import note

QUORUM = 2
"""Cosignatures a member's checkpoint needs: 2 of the other 3, more than half, so that a log
cannot show two histories each with a quorum of honest witnesses (docs/FEDERATION.md)."""
ROUND_SECONDS = 1.0
"""[network] witness_push_seconds and replicate_seconds of the demo's gateways (10 and 30 by
default): a demo shows in seconds what a deployment does in a minute."""
GRACE_SECONDS = 2.0
"""[server] grace_seconds of the demo's gateways (10 by default): the agencies' watches, open
until cut, would hold every stop that long."""
ROLLED_BACK = "zj-gateway"
"""The member restarted on an older copy of its database."""
BACKUP = "backup"
BEFORE_RESTORE = "audit.checkpoint.before-restore"
"""Where the restored member's checkpoint file, as it was when it stopped, is kept."""
VERIFY_SECONDS = 120.0


@dataclass
class NationalDemo:
    """A national network under `root`: its layout, its gateway processes, the scenario."""

    root: Path
    scenario: NationalScenario
    layout: NationalLayout | None = None
    gateways: dict[str, GatewayProcess] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, agency_count: int, large_bytes: int,
               seed: int) -> NationalDemo:
        """A network to lay out under `root`, its members on loopback ports free now."""
        served = served_by(REGIONS, roster(agency_count))
        paths = NationalLayout(root, REGIONS)
        homes = tuple(Home(region.gateway_id, f"127.0.0.1:{free_port()}",
                           paths.gateway(region.gateway_id).certs_folder,
                           tuple(served[region.gateway_id])) for region in REGIONS)
        return cls(root, NationalScenario(root, homes, large_bytes, seed))

    def steps(self) -> list[Step]:
        return [
            Step(f"Lay out {len(REGIONS)} gateways, the national CA, the signed configuration",
                 self.lay_out),
            Step("Start the gateways, each a process in its own folder", self.start),
            *self.scenario.setup_steps(),
            *self.scenario.exchange_steps(),
            Step(f"{ROLLED_BACK}'s operator backs up its database", self.back_up),
            *self.scenario.witness_steps(),
            Step(f"{ROLLED_BACK} restarted on its older copy", self.restore),
            self.scenario.caught(ROLLED_BACK),
            Step("Every gateway's audit log verified (govshare audit verify)", self.verify_audit),
        ]

    # -- what the operators do -----------------------------------------------------------------

    def lay_out(self) -> str:
        homes = self.scenario.homes
        self.layout = lay_out_national(
            self.root, REGIONS, self.scenario.specs(), quorum=QUORUM,
            addresses={home.member: home.target for home in homes},
            server={"grace_seconds": GRACE_SECONDS},
            network={"witness_push_seconds": ROUND_SECONDS, "replicate_seconds": ROUND_SECONDS})
        served = "; ".join(f"{home.member}: {', '.join(a.id for a in home.agencies)}"
                           for home in homes)
        return (f"{served}; each log to be cosigned by {QUORUM} of the other {len(homes) - 1}"
                f" members, as {self.layout.configuration_path} says, signed by the network"
                " authority")

    def start(self) -> str:
        """Every gateway started at once, then each waited for until it answers SERVING."""
        assert self.layout is not None
        for home in self.scenario.homes:
            folder = self.layout.gateway(home.member)
            self.gateways[home.member] = GatewayProcess(
                folder.config_path, home.target, folder.certs("admin"),
                folder.root / LOG_FILE)
        for gateway in self.gateways.values():
            gateway.spawn()
        for gateway in self.gateways.values():
            gateway.wait_serving()
        return ("; ".join(f"{member} on {gateway.target} (pid {gateway.pid})"
                          for member, gateway in self.gateways.items())
                + f"; each logs to {LOG_FILE} in its folder under {self.root}")

    def back_up(self) -> str:
        """A backup taken while the gateway runs: its checkpoint file, then its database (an
        online copy). In that order the database can only be ahead of the file, which a start
        accepts, as after a crash between a commit and the file's save."""
        config = self._config(ROLLED_BACK)
        folder = config.base_dir / BACKUP
        folder.mkdir()
        checkpoint_file = config.path(config.audit.checkpoint_file)
        shutil.copy2(checkpoint_file, folder / checkpoint_file.name)
        database.copy(config.path(config.storage.database), folder / config.storage.database.name)
        return (f"checkpoint {_size(folder / checkpoint_file.name)} and the database copied to"
                f" {folder}")

    def restore(self) -> str:
        """Stop the gateway, put the backup in place of its database and checkpoint file (the
        one it saved kept aside for auditors), start it again: nothing in its own folder tells
        it that it went back."""
        config = self._config(ROLLED_BACK)
        gateway = self.gateways[ROLLED_BACK]
        gateway.stop()
        checkpoint_file = config.path(config.audit.checkpoint_file)
        kept = config.base_dir / BEFORE_RESTORE
        checkpoint_file.replace(kept)
        backup = config.base_dir / BACKUP
        shutil.copy2(backup / checkpoint_file.name, checkpoint_file)
        database.copy(backup / config.storage.database.name, config.path(config.storage.database))
        gateway.start()
        return (f"stopped at checkpoint {_size(kept)} (kept as {kept.name}); the backup put"
                f" back; serving again at checkpoint {_size(checkpoint_file)}, pid {gateway.pid}")

    def verify_audit(self) -> str:
        """`govshare audit verify` of every member, as its auditor runs it: the log rebuilt and
        the witness policy met; the restored member's against the checkpoint it had saved
        before the restore, which its log no longer extends."""
        assert self.layout is not None
        runs = {}
        for member in self.gateways:
            config = self.layout.gateway(member).config_path
            against = (["--against", str(config.parent / BEFORE_RESTORE)]
                       if member == ROLLED_BACK else [])
            runs[member] = subprocess.Popen(
                govshare_command("audit", "verify", "--config", str(config), *against),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
        shown = []
        for member, run in runs.items():
            out, err = run.communicate(timeout=VERIFY_SECONDS)
            expected = 1 if member == ROLLED_BACK else 0
            for _ in range(10):  # its newest checkpoint may await the witnesses' next round
                if run.returncode == expected or "NOT WITNESSED" not in out + err:
                    break
                time.sleep(1)
                run = subprocess.Popen(runs[member].args, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                out, err = run.communicate(timeout=VERIFY_SECONDS)
            if run.returncode != expected:
                raise StepFailed(f"govshare audit verify of {member} exited {run.returncode}:"
                                 f" {(out + err).strip()}")
            said = [_first_clause(line) for line in (err if expected else out).splitlines()
                    if line.strip()]
            shown.append(f"{member}: {', '.join(said[:1] if expected else said)}")
        return "; ".join(shown)

    def _config(self, member: str) -> config_module.Config:
        assert self.layout is not None
        return config_module.load(self.layout.gateway(member).config_path)

    def close(self) -> None:
        """Stop the agencies and close every channel; stop every gateway, all asked at once
        and each killed if it has not stopped in time."""
        try:
            self.scenario.close()
        finally:
            for gateway in self.gateways.values():
                gateway.terminate()
            for gateway in self.gateways.values():
                gateway.wait_stopped(STOP_TIMEOUT)


def _first_clause(line: str) -> str:
    """`audit verify`'s line up to its details: "OK: 8 entries, 9 checkpoints", "FAILED: ..."."""
    return line.split(" (")[0].split("; ")[0]


def _size(checkpoint_file: Path) -> int:
    """The size of the latest checkpoint a checkpoint file holds."""
    latest = saved.slots(checkpoint_file.read_bytes())[0]
    return note.Checkpoint.parse(note.unverified_text(latest)).size


@dataclass
class SingleGatewayDemo:
    """A demo network under `root` with one gateway: its layout, its gateway and the scenario
    run against it."""

    layout: NetworkLayout
    port: int
    scenario: Scenario
    server: GatewayServer | None = None

    @classmethod
    def create(cls, root: Path, agency_count: int, large_bytes: int,
               seed: int) -> SingleGatewayDemo:
        """A network to lay out under `root`, on a loopback port free now."""
        layout, port = NetworkLayout(root), free_port()
        home = Home("", f"127.0.0.1:{port}", layout.certs_folder, tuple(roster(agency_count)))
        return cls(layout, port, Scenario(root, (home,), large_bytes, seed))

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
        specs = self.scenario.specs()
        lay_out(self.root, specs, listen=f"127.0.0.1:{self.port}")
        return (f"{len(specs)} agencies, admin and auditor certificates in"
                f" {self.layout.certs_folder}; config {self.layout.config_path}")

    def start_gateway(self) -> str:
        self.server = create_server(config_module.load(self.layout.config_path))
        self.server.start()
        return f"listening on 127.0.0.1:{self.port}; database and blobs in {self.root}"

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
