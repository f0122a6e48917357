"""A national network on disk for the network configuration's tests: a real national CA, its
network authority, and member gateways with real certificates, audit and witness keys; a
laid-out network whose running gateway is a member (`Membership`, `start_member_network`); and
several member gateways running on 127.0.0.1, witnessing, replicating and gossiping with each
other (`Members`, `start_members`, `two_regions`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.serialization import Encoding

from agencies.audit import witness_policy
from agencies.client import AdminClient, AgencyClient, BaseClient
from certs import CRL_FILE, SIGNING_CERT, SIGNING_KEY, TLS_CERT, CertificateAuthority
from certs import network_configuration as netconf
from gateway import config as config_module
from gateway.config import AuditConfig
from gateway.national import CONFIGURATION_FILE, NETWORK_ID
from gateway.national import audit_origin as origin
from gateway.network import NetworkLayout, free_port, lay_out
from gateway.server import GatewayServer, create_server
from gateway.storage import audit as audit_sql
from gateway.v1 import audit_pb2, exchange_pb2_grpc, network_pb2, witness_pb2_grpc
from govshare.signing import SigningKey, write_private_pem
from govshare.transparency import record
from govshare.transparency.cosignature import CosignatureVerifier
from govshare.transparency.note import Checkpoint, NoteSigner, NoteVerifier, sign_note
from tests.support.exchange import MovableClock
from tests.support.network import AGENCIES, Network

REGIONS = {"gd-gateway": ["440000", "440100"], "bj-gateway": ["110000"],
           "sh-gateway": ["310000"]}
MORE_REGIONS = {"zj-gateway": ["330000"], "sc-gateway": ["510000"]}
"""Regions of members some tests add to the federation's three (`Members` issues them)."""
AUDIT_KEY_FILE = "audit.vkey"
WITNESS_KEY_FILE = "witness.vkey"
WITNESS_PRIVATE_KEY = "witness.key"


@dataclass
class Federation:
    """The CA folder, the authority folder and one folder per member gateway under `root`."""

    root: Path
    ca: CertificateAuthority = field(init=False)

    def __post_init__(self) -> None:
        self.ca = CertificateAuthority.init(self.root / "ca")
        self.ca.issue_network_authority(NETWORK_ID, self.authority)
        for gateway_id in REGIONS:
            self.add_gateway(gateway_id)

    @property
    def authority(self) -> Path:
        return self.root / "authority"

    def folder(self, gateway_id: str) -> Path:
        return self.root / "gateways" / gateway_id

    def add_gateway(self, gateway_id: str, *, name: str | None = None) -> Path:
        """Issue gateway `name` (default: `gateway_id`) into `gateway_id`'s folder, with its
        audit verifier key (of its signing key) and a witness key beside the certificates."""
        out = self.folder(gateway_id)
        self.ca.issue_gateway(out, name or gateway_id)
        signing_key = SigningKey.load(out / SIGNING_KEY)
        (out / AUDIT_KEY_FILE).write_text(
            NoteVerifier(origin(gateway_id), signing_key.verifier()).verifier_key + "\n")
        witness = netconf.new_witness_key(out / WITNESS_PRIVATE_KEY, f"{gateway_id}-witness")
        (out / WITNESS_KEY_FILE).write_text(witness.verifier_key + "\n")
        return out

    def member(self, gateway_id: str) -> network_pb2.MemberGateway:
        out = self.folder(gateway_id)
        return netconf.member(
            out, gateway_id=gateway_id,
            region_codes=REGIONS.get(gateway_id) or MORE_REGIONS.get(gateway_id, ["650000"]),
            address=f"{gateway_id}.example.gov:8443", audit_origin=origin(gateway_id),
            witness_verifier_key=(out / WITNESS_KEY_FILE).read_text().strip())

    def crl_der(self) -> bytes:
        return self.ca.crl().public_bytes(Encoding.DER)

    def unsigned(self, members: list[network_pb2.MemberGateway] | None = None, quorum: int = 1,
                 now: datetime | None = None) -> network_pb2.NetworkConfiguration:
        """A configuration the checks pass: every member, built by certs.network_configuration."""
        if members is None:
            members = [self.member(gateway_id) for gateway_id in REGIONS]
        return netconf.build(NETWORK_ID, members, quorum, self.crl_der(), self.ca.certificate,
                             now or datetime.now(UTC))

    def sign(self, configuration: network_pb2.NetworkConfiguration, version: int = 1, *,
             validity: timedelta = timedelta(days=1), now: datetime | None = None,
             authority: Path | None = None) -> network_pb2.SignedNetworkConfiguration:
        """`configuration` sealed by the authority in `authority` (default: the network's),
        WITHOUT the checks `sign` makes, so tests can sign what an attacker would."""
        folder = authority or self.authority
        return netconf.seal(configuration, SigningKey.load(folder / SIGNING_KEY),
                            (folder / SIGNING_CERT).read_text(), version=version,
                            validity=validity, now=now or datetime.now(UTC))

    def signed(self, version: int = 1, **options) -> network_pb2.SignedNetworkConfiguration:
        return self.sign(self.unsigned(), version, **options)

    @property
    def crl_path(self) -> Path:
        return self.root / "ca" / CRL_FILE


@dataclass
class Membership:
    """A network authority of a laid-out network's CA, signing configurations that name the
    network's gateway (its certificates in certs/gateway, its log of [audit] origin) as a
    member, written where [network] configuration_file points (`path`)."""

    layout: NetworkLayout
    audit_origin: str = AuditConfig().origin
    ca: CertificateAuthority = field(init=False)

    def __post_init__(self) -> None:
        self.ca = CertificateAuthority.open(self.layout.ca_folder)
        self.ca.issue_network_authority(NETWORK_ID, self.authority)

    @property
    def authority(self) -> Path:
        return self.layout.root / "authority"

    @property
    def path(self) -> Path:
        return self.layout.root / CONFIGURATION_FILE

    @property
    def address(self) -> str:
        """Where the network's gateway listens: its clients' target."""
        return config_module.load(self.layout.config_path).server.listen

    def member(self, folder: Path | None = None, gateway_id: str = "gateway",
               region_codes: tuple[str, ...] = ("440000", "330000")
               ) -> network_pb2.MemberGateway:
        """The gateway of the certificates in `folder` (default: the network's own, at the
        address it listens on), with the audit verifier key of its signing key under
        `audit_origin` and the witness key of the folder's WITNESS_PRIVATE_KEY (a fresh one when
        it has none)."""
        folder = folder or self.layout.certs("gateway")
        own = gateway_id == "gateway"
        origin_line = self.audit_origin if own else origin(gateway_id)
        witness_file = folder / WITNESS_PRIVATE_KEY
        witness = (SigningKey.load(witness_file) if witness_file.exists()
                   else SigningKey.generate())
        return netconf.member(
            folder, gateway_id=gateway_id, region_codes=region_codes,
            address=self.address if own else f"{gateway_id}.example.gov:8443",
            audit_origin=origin_line, witness_verifier_key=CosignatureVerifier(
                f"{gateway_id}-witness", witness.verifier()).verifier_key)

    def signed(self, version: int, *, now: datetime | None = None,
               validity: timedelta = timedelta(days=1),
               members: list[network_pb2.MemberGateway] | None = None,
               crl_der: bytes | None = None) -> network_pb2.SignedNetworkConfiguration:
        """Version `version` signed at `now` (default: the real time) by the authority, naming
        `members` (default: the gateway alone, of quorum 0; several, of quorum 1) and carrying
        `crl_der` (default: the CA's)."""
        crl = crl_der or self.ca.crl().public_bytes(Encoding.DER)
        members = members or [self.member()]
        configuration = netconf.build(NETWORK_ID, members, min(1, len(members) - 1), crl,
                                      self.ca.certificate, datetime.now(UTC))
        return netconf.seal(configuration, SigningKey.load(self.authority / SIGNING_KEY),
                            (self.authority / SIGNING_CERT).read_text(), version=version,
                            validity=validity, now=now or datetime.now(UTC))

    def write(self, signed: network_pb2.SignedNetworkConfiguration | bytes) -> None:
        data = signed if isinstance(signed, bytes) else signed.SerializeToString()
        self.path.write_bytes(data)


def lay_out_member(root: Path, **sections: dict) -> tuple[NetworkLayout, Membership]:
    """A network laid out whose gateway.toml names CONFIGURATION_FILE as [network]
    configuration_file, and its authority; the file is not written yet. The gateway listens on
    a port chosen now, so the configuration names it at the address its clients connect to."""
    layout = lay_out(root, AGENCIES, listen=f"127.0.0.1:{free_port()}", network={
        "configuration_file": CONFIGURATION_FILE,
        "witness_key": f"certs/gateway/{WITNESS_PRIVATE_KEY}", **sections.pop("network", {})},
        **sections)
    write_private_pem(layout.certs("gateway") / WITNESS_PRIVATE_KEY, SigningKey.generate())
    return layout, Membership(layout)


def start_member_network(root: Path, clock: MovableClock) -> tuple[Network, Membership]:
    """A network whose gateway is a member of the national network, holding version 1 of its
    configuration, and reads the time from `clock`; its agencies registered."""
    layout, membership = lay_out_member(root)
    membership.write(membership.signed(1))
    server = create_server(config_module.load(layout.config_path), clock=clock)
    server.start()
    network = Network(layout, server)
    for spec in AGENCIES:
        network.register(spec)
    return network, membership


@dataclass
class Members:
    """Member gateways of one federation running on 127.0.0.1, each at the address the
    configuration names, witnessing each other; the pusher is driven by `push`."""

    federation: Federation
    ids: tuple[str, ...]
    quorum: int = 1
    witness_http: bool = False
    """Whether each member also serves the witness's HTTP form (on a port of its choice)."""
    overrides: dict[str, dict] = field(default_factory=dict)
    """Config values written over the ones set here, by section (the benchmark's shorter
    witness and replication rounds, its raised rate limits)."""
    ports: dict[str, int] = field(default_factory=dict)
    servers: dict[str, GatewayServer] = field(default_factory=dict)

    configuration_files: dict[str, Path] = field(default_factory=dict)
    """Members reading a configuration file of their own (`hold`), not the shared one."""

    def __post_init__(self) -> None:
        self.ports = {gateway_id: free_port() for gateway_id in self.ids}
        for gateway_id in self.ids:
            if not self.federation.folder(gateway_id).exists():
                self.federation.add_gateway(gateway_id)
            self._write_config(gateway_id)
        self.write_configuration(1)
        self.federation.ca.issue_staff("auditor", "auditor", self.auditor_folder)

    @property
    def auditor_folder(self) -> Path:
        return self.federation.root / "auditor"

    def config_path(self, gateway_id: str) -> Path:
        return self.federation.folder(gateway_id) / "gateway.toml"

    def members(self, ids: tuple[str, ...] | None = None) -> list[network_pb2.MemberGateway]:
        """The members `ids` (default: all), each at its address on 127.0.0.1."""
        members = []
        for gateway_id in ids or self.ids:
            member = self.federation.member(gateway_id)
            member.address = f"127.0.0.1:{self.ports[gateway_id]}"
            members.append(member)
        return members

    @property
    def configuration_file(self) -> Path:
        """The configuration file the members read (but those given one of their own)."""
        return self.federation.root / CONFIGURATION_FILE

    def write_configuration(self, version: int, ids: tuple[str, ...] | None = None,
                            quorum: int | None = None) -> bytes:
        """Sign version `version` naming members `ids` (default: all) with `quorum` (default:
        the members'), write it to the shared file and return its bytes."""
        unsigned = self.federation.unsigned(self.members(ids),
                                            self.quorum if quorum is None else quorum)
        data = self.federation.sign(unsigned, version).SerializeToString()
        self.configuration_file.write_bytes(data)
        return data

    def hold(self, gateway_id: str, data: bytes) -> None:
        """Give `gateway_id` a configuration file of its own holding `data`: the member reads
        it from its next start on, and a member started on it takes new `data` at its next
        refresh (`gateway(gateway_id).network.refresh()`)."""
        path = self.federation.folder(gateway_id) / CONFIGURATION_FILE
        path.write_bytes(data)
        if self.configuration_files.get(gateway_id) != path:
            self.configuration_files[gateway_id] = path
            self._write_config(gateway_id)

    def _write_config(self, gateway_id: str) -> None:
        root = self.federation.root
        sections: dict[str, dict] = {
            "server": {"listen": f"127.0.0.1:{self.ports[gateway_id]}"},
            "tls": {"ca": Path("ca.pem"), "crl": root / "ca" / CRL_FILE,
                    "certificate": Path(TLS_CERT), "key": Path("tls.key"),
                    "signing_certificate": Path(SIGNING_CERT), "signing_key": Path(SIGNING_KEY)},
            "audit": {"origin": origin(gateway_id)},
            "network": {"configuration_file": str(self.configuration_files.get(
                            gateway_id, self.configuration_file)),
                        "witness_key": WITNESS_PRIVATE_KEY, "witness_push_seconds": 3600.0,
                        "replicate_seconds": 3600.0, "gossip_seconds": 3600.0,
                        "witness_http_listen": "127.0.0.1:0" if self.witness_http else ""},
        }
        for section, values in self.overrides.items():
            sections[section] = {**sections.get(section, {}), **values}
        config = config_module.Config().replace(**sections)
        self.config_path(gateway_id).write_text(config_module.render(config))

    def start(self, gateway_id: str) -> GatewayServer:
        server = create_server(config_module.load(self.config_path(gateway_id)))
        server.start()
        self.servers[gateway_id] = server
        return server

    def stop(self, gateway_id: str) -> None:
        self.servers.pop(gateway_id).stop(grace=0)

    def gateway(self, gateway_id: str):
        return self.servers[gateway_id].gateway

    def push(self, gateway_id: str) -> dict[str, str]:
        """Have `gateway_id` ask its witnesses for cosignatures now."""
        return self.gateway(gateway_id).cosignatures.push()

    def target(self, gateway_id: str) -> str:
        return f"127.0.0.1:{self.ports[gateway_id]}"

    def pull(self) -> None:
        """Have every running member take the others' changes now."""
        for gateway_id in self.servers:
            self.gateway(gateway_id).replicator.pull()

    def records(self, gateway_id: str, action: str) -> list[dict]:
        """The records of `gateway_id`'s log of `action`, oldest first, as their bytes say."""
        rows = self.gateway(gateway_id).db.reader().execute(
            "SELECT record FROM audit_leaves WHERE action = ? ORDER BY leaf_index",
            (action,)).fetchall()
        return [record.decode(row[0]) for row in rows]

    def peer_exchange(self, caller_id: str, callee_id: str) -> Any:
        """An ExchangeService stub of member `callee_id` over `caller_id`'s own pinned channel
        to it: what `caller_id`'s gateway presents when it calls as a peer."""
        return exchange_pb2_grpc.ExchangeServiceStub(self.peer_channel(caller_id, callee_id))

    def peer_channel(self, caller_id: str, callee_id: str) -> Any:
        """`caller_id`'s own pinned channel to member `callee_id`."""
        caller = self.gateway(caller_id)
        return caller.peer_channels.channel(caller.network.current.member(callee_id))

    def grow(self, gateway_id: str, events: int = 1) -> None:
        """Append `events` events to a member's log (one batch: one new checkpoint)."""
        gateway = self.gateway(gateway_id)
        gateway.work.append([record.Event(gateway.identity.uri, "test.grow")
                             for _ in range(events)])

    def signed_checkpoint(self, gateway_id: str, size: int, root_hash: bytes) -> bytes:
        """A checkpoint of `gateway_id`'s log signed with its audit key, of any size and root:
        what the member's operator could sign to show one history to some and another to
        others."""
        signer = NoteSigner(origin(gateway_id),
                            SigningKey.load(self.federation.folder(gateway_id) / SIGNING_KEY))
        return sign_note(Checkpoint(origin(gateway_id), size, root_hash).to_text(), [signer])

    def actions(self, gateway_id: str) -> list[str]:
        """The actions of a member's audit events, in log order."""
        conn = self.gateway(gateway_id).db.reader()
        return [record.decode(data)["action"] for _, data in audit_sql.iter_records(conn)]

    def latest(self, gateway_id: str) -> audit_pb2.GetCheckpointResponse:
        """A member's latest checkpoint, with the cosignatures it holds, as the auditor gets
        it."""
        with BaseClient(self.target(gateway_id), self.auditor_folder,
                        server_name="localhost") as auditor:
            return auditor.audit.GetCheckpoint(audit_pb2.GetCheckpointRequest(), timeout=10)

    def sdk(self, gateway_id: str, state: Path | None = None) -> AdminClient:
        """An SDK client of `gateway_id` (as the auditor) checking the witness policy of the
        configuration the member holds, its audit state in `state` (default: one file per
        member, kept from client to client)."""
        client = AdminClient(self.target(gateway_id), self.auditor_folder,
                             server_name="localhost")
        client.audit_state_file = state or self.auditor_folder / f"{gateway_id}-audit.json"
        configuration = self.gateway(gateway_id).network.current.configuration
        client.audit_witness_policy = witness_policy(configuration, origin(gateway_id))
        return client

    def close(self) -> None:
        for gateway_id in list(self.servers):
            self.stop(gateway_id)


def peer_stub(folder: Path, target: str) -> tuple[grpc.Channel, object]:
    """A WitnessService stub to `target`, calling with the certificates in `folder` (a peer's,
    to send what the peer's gateway would not)."""
    credentials = grpc.ssl_channel_credentials(
        (folder / "ca.pem").read_bytes(), (folder / "tls.key").read_bytes(),
        (folder / "tls.pem").read_bytes())
    channel = grpc.secure_channel(target, credentials)
    return channel, witness_pb2_grpc.WitnessServiceStub(channel)


def start_members(root: Path, ids: tuple[str, ...] = ("gd-gateway", "bj-gateway"),
                  quorum: int = 1, *, witness_http: bool = False,
                  started: int | None = None,
                  overrides: dict[str, dict] | None = None) -> Members:
    """Members `ids` of a new federation under `root`, the first `started` of them (every one
    by default) started (serving the witness's HTTP form too, with `witness_http`; config
    values of `overrides` written over the members' own, by section)."""
    members = Members(Federation(root), ids, quorum, witness_http, overrides or {})
    for gateway_id in ids[:started]:
        members.start(gateway_id)
    return members


@dataclass
class TwoRegions:
    """gd-gateway and bj-gateway serving (sh-gateway named by the configuration, never started
    here), each with one registered agency: gd-health (440000) and bj-stats (110000)."""

    members: Members
    clients: dict[str, AgencyClient]
    """By agency id."""
    admins: dict[str, AdminClient]
    """By gateway id."""

    def close(self) -> None:
        for client in (*self.clients.values(), *self.admins.values()):
            client.close()
        self.members.close()


def two_regions(root: Path, **overrides: dict) -> TwoRegions:
    """`TwoRegions` under `root`, each member's config with the `overrides` sections."""
    members = start_members(root, ("gd-gateway", "bj-gateway", "sh-gateway"), started=2,
                            overrides=overrides)
    clients, admins = {}, {}
    for gateway_id, agency_id, region in (("gd-gateway", "gd-health", "440000"),
                                          ("bj-gateway", "bj-stats", "110000")):
        admins[gateway_id] = member_admin(members, gateway_id)
        clients[agency_id] = join_agency(members, admins[gateway_id], agency_id, region)
    return TwoRegions(members, clients, admins)


@contextmanager
def answering(gateway: Any, member_id: str,
              alter: dict[str, Callable[[Any], Any]]) -> Iterator[None]:
    """While in the block, what `gateway` carries to member `member_id` is answered as
    `alter[method]` turns that member's genuine answer (it may also raise): what a member whose
    operator changed its gateway's answers sends back."""
    carrier = gateway.carrier
    genuine = carrier._ask

    def ask(member: network_pb2.MemberGateway, agency: str, method: str, request: Any) -> Any:
        answer = genuine(member, agency, method, request)
        changed = alter.get(method) if member.id == member_id else None
        return changed(answer) if changed is not None else answer

    carrier._ask = ask
    try:
        yield
    finally:
        del carrier._ask


def member_admin(members: Members, gateway_id: str) -> AdminClient:
    """An administrator of `gateway_id` (its certificate issued now), connected to it."""
    folder = members.federation.root / "admins" / gateway_id
    members.federation.ca.issue_staff(f"admin-{gateway_id}", "admin", folder)
    return AdminClient(members.target(gateway_id), folder, server_name="localhost")


def join_agency(members: Members, admin: AdminClient, agency_id: str, region: str,
         **options: Any) -> AgencyClient:
    """Agency `agency_id` of `region`, its certificates issued now, registered by `admin` at
    the admin's gateway and connected to it (`options`: the client's, e.g. timeout)."""
    folder = members.federation.root / "agencies" / agency_id
    members.federation.ca.issue_agency(agency_id, folder)
    admin.register_agency(agency_id, f"{agency_id} agency", region,
                          (folder / SIGNING_CERT).read_text())
    return AgencyClient(admin.target, folder, server_name="localhost", **options)
