"""The authorization matrix: every RPC of gateway.v1 called by every kind of caller.

One network holds an owner with datasets, a requester with a grant and a pending request, idle
agencies of the same and of another region, a suspended agency, staff, a revoked certificate, a
certificate of a foreign CA and a connection without one. Its gateway is a member of a national
network whose configuration names one other member, bj-gateway: the peer column presents
bj-gateway's certificates (no bj-gateway runs: a peer is a caller here, and audit reads
naming its log are carried to an address where nothing listens), as itself, for
bj-remote (an agency of bj-gateway's region, taken into the gateway's replicas as bj-gateway's
own) and for an agency of the gateway itself; an agency claims to speak for another; and a
gateway the CA issued but the configuration does not name presents its own. Each cell of
`tests.support.authorization.TABLE` is one valid request of that RPC sent by that caller; the
outcome must be the cell's, and a refusal that reached the gateway must have left exactly one
REFUSED audit event, naming the caller and carrying the reason.
"""

from __future__ import annotations

import collections
import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

import gateway.v1
from agencies.client import AdminClient, AgencyClient, BaseClient
from agencies.errors import from_rpc_error
from agencies.sim.roster import AgencySpec
from certs.ca import CertificateAuthority
from gateway import config as config_module
from gateway.identity import ON_BEHALF_KEY
from gateway.network import add_agency, free_port
from gateway.server import create_server
from gateway.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    exchange_pb2,
    exchange_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
    replication_pb2,
    replication_pb2_grpc,
    witness_pb2,
    witness_pb2_grpc,
)
from govshare import envelopes, times
from govshare.signing import SigningKey
from govshare.transparency import merkle, note, record
from tests.support import security as support
from tests.support.authorization import COLUMNS, OTHER_LOG, TABLE, expected, render
from tests.support.exchange import ask, publish
from tests.support.federation import AGENCIES, lay_out_member, origin
from tests.support.network import Network

TIMEOUT = 10.0
DOC = Path(__file__).parents[2] / "docs" / "AUTHORIZATION.md"
SERVICES = tuple(
    importlib.import_module(f"gateway.v1.{module.name}")
    for module in pkgutil.iter_modules(gateway.v1.__path__) if module.name.endswith("_pb2"))
"""Every generated module of gateway.v1: a new service is in the matrix or the test fails."""
PEER = "bj-gateway"
"""The other member of the network, whose certificates the peer column presents."""
OUTSIDER = "sh-gateway"
"""A gateway the national CA issued and the network configuration does not name."""

CAST = [
    AgencySpec("gd-health", "Guangdong Provincial Health Commission", "440000"),
    AgencySpec("js-stats", "Jiangsu Provincial Bureau of Statistics", "320000"),
    AgencySpec("sz-market", "Shenzhen Market Regulation Bureau", "440300"),
    AgencySpec("zj-stats", "Zhejiang Provincial Bureau of Statistics", "330000"),
    AgencySpec("gz-police", "Guangzhou Public Security Bureau", "440100"),
    AgencySpec("hz-water", "Hangzhou Water Resources Bureau", "330100"),
]
AGENCY_COLUMNS = {"owner": "gd-health", "requester": "js-stats", "same_region": "sz-market",
                  "other_region": "zj-stats", "suspended": "gz-police", "revoked": "hz-water"}
GATEWAY_COLUMNS = {"peer": PEER, "outsider": OUTSIDER}
REMOTE = AgencySpec("bj-remote", "Beijing Municipal Bureau of Statistics", "110000")
"""An agency homed at the peer, which the peer column speaks for."""
CLAIMS = {"peer_for_agency": (PEER, REMOTE.id), "peer_for_other": (PEER, "js-stats"),
          "agency_claiming": ("js-stats", "zj-stats")}
"""The columns that send govshare-on-behalf-of: (who calls, the agency it claims)."""


@dataclass
class Caller:
    """One column: a channel with some certificate (or none) and, for agencies, a signing key."""

    column: str
    uri: str
    name: str
    key: SigningKey | None
    channel: grpc.Channel
    via: str = ""
    """The gateway carrying the calls, for a peer speaking for its agency (the caller then)."""
    directory: Any = field(init=False)
    catalog: Any = field(init=False)
    exchange: Any = field(init=False)
    audit: Any = field(init=False)
    network: Any = field(init=False)
    witness: Any = field(init=False)

    def __post_init__(self) -> None:
        self.directory = directory_pb2_grpc.DirectoryServiceStub(self.channel)
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(self.channel)
        self.exchange = exchange_pb2_grpc.ExchangeServiceStub(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)
        self.network = network_pb2_grpc.NetworkServiceStub(self.channel)
        self.witness = witness_pb2_grpc.WitnessServiceStub(self.channel)
        self.replication = replication_pb2_grpc.ReplicationServiceStub(self.channel)

    @classmethod
    def of(cls, column: str, client: BaseClient) -> Caller:
        return cls(column, client.identity.uri, getattr(client, "name", ""),
                   getattr(client, "signing_key", None), client.channel)

    @property
    def slug(self) -> str:
        return self.column.replace("_", "-")


@dataclass
class World:
    """The network and the resources the requests name."""

    network: Any
    owner: AgencyClient
    requester: AgencyClient
    admin: AdminClient
    confidential: str
    conditional: str
    unconditional: str
    pending: str
    publish_leaf: int
    asked: int = 0
    """Datasets published for new pending requests (one pending request per dataset)."""

    def issue(self, agency_id: str) -> str:
        """A new agency's CA-issued signing certificate (PEM)."""
        folder = add_agency(self.network.layout, AgencySpec(agency_id, agency_id, "440000"))
        return (folder / "signing.pem").read_text()

    def new_pending(self) -> str:
        self.asked += 1
        dataset = publish(self.owner, f"beds-{self.asked}", sharing_type="CONDITIONAL")
        return ask(self.requester, dataset).access_request.name


@pytest.fixture
def member_network(tmp_path: Path) -> Iterator[Network]:
    """The matrix's network: its gateway a member of a national network with bj-gateway (never
    started, never pushed to), and the outsider's certificates issued by the same CA."""
    layout, membership = lay_out_member(
        tmp_path / "matrix", limits={"requests_per_second": 10000.0, "burst": 10000},
        network={"witness_push_seconds": 3600.0})
    laid_out = {spec.id for spec in AGENCIES}
    for spec in CAST:
        if spec.id not in laid_out:
            add_agency(layout, spec)
    for gateway_id in GATEWAY_COLUMNS.values():
        membership.ca.issue_gateway(layout.certs(gateway_id), gateway_id)
    peer = membership.member(layout.certs(PEER), PEER, ("110000",))
    peer.address = f"127.0.0.1:{free_port()}"  # where nothing listens: reads carried there fail
    own = membership.member(region_codes=("440000", "330000", "320000"))  # the cast's regions
    membership.write(membership.signed(1, members=[own, peer]))
    server = create_server(config_module.load(layout.config_path))
    server.start()
    network = Network(layout, server)
    try:
        for spec in CAST:
            network.register(spec)
        yield network
    finally:
        network.close()


def _replicate_remote(network: Any) -> SigningKey:
    """REMOTE, its certificates issued by the national CA, taken into the gateway's replicas as
    an agency of the peer, as a pull from it would; its signing key."""
    folder = add_agency(network.layout, REMOTE)
    member = network.gateway.network.current.member(PEER)
    now = times.utcnow()
    agency = directory_pb2.Agency(
        name=f"agencies/{REMOTE.id}", display_name=REMOTE.display_name,
        region_code=REMOTE.region_code,
        signing_certificate_pem=(folder / "signing.pem").read_text(),
        signing_key_id=SigningKey.load(folder / "signing.key").key_id,
        state=directory_pb2.AGENCY_STATE_ACTIVE, create_time=times.to_timestamp(now),
        update_time=times.to_timestamp(now))
    refused = network.gateway.replicas.apply(
        member, [replication_pb2.NetworkChange(position=1, agency=agency)], 1, "matrix", now)
    assert refused == 0
    return SigningKey.load(folder / "signing.key")


def _world(network: Any) -> World:
    owner, requester, admin = network.agency("gd-health"), network.agency("js-stats"), \
        network.admin()
    confidential = publish(owner, "clinics", classification="CONFIDENTIAL",
                           sharing_type="CONDITIONAL")
    conditional = publish(owner, "beds", sharing_type="CONDITIONAL")
    unconditional = publish(owner, "bed-totals", classification="PUBLIC")
    owner.approve(ask(requester, confidential).access_request.name)
    publish_leaf = next(owner.versions(confidential)).audit_leaf_index
    world = World(network, owner, requester, admin, confidential, conditional, unconditional,
                  "", publish_leaf)
    world.pending = world.new_pending()
    admin.suspend_agency("gz-police", "under investigation")
    ca = CertificateAuthority.open(network.layout.ca_folder)
    tls = next(row for row in ca.list()
               if row.identity == "urn:govshare:agency:hz-water" and row.purpose == "tls")
    ca.revoke(tls.serial, reason="keyCompromise")
    return world


def _callers(network: Any, tmp_path: Path) -> list[Caller]:
    clients: dict[str, BaseClient] = {column: network.agency(agency_id)
                                      for column, agency_id in AGENCY_COLUMNS.items()}
    clients.update(admin=network.admin(), auditor=network.auditor())
    foreign = CertificateAuthority.init(tmp_path / "foreign-ca")
    foreign.issue_agency("gd-health", tmp_path / "impostor")
    root = (network.layout.ca_folder / "ca.pem").read_bytes()
    impostor = grpc.ssl_channel_credentials(root, (tmp_path / "impostor/tls.key").read_bytes(),
                                            (tmp_path / "impostor/tls.pem").read_bytes())
    options = [("grpc.ssl_target_name_override", "localhost")]
    extra = {
        **{column: _gateway_caller(network, column, gateway_id)
           for column, gateway_id in GATEWAY_COLUMNS.items()},
        "foreign_ca": Caller("foreign_ca", "urn:govshare:agency:gd-health", "agencies/gd-health",
                             SigningKey.load(tmp_path / "impostor/signing.key"),
                             grpc.secure_channel(network.target, impostor, options)),
        "no_certificate": Caller("no_certificate", "", "", None, grpc.secure_channel(
            network.target, grpc.ssl_channel_credentials(root), options)),
    }
    remote_key = _replicate_remote(network)
    for column, (who, claimed) in CLAIMS.items():
        base = extra.get("peer") if who == PEER else Caller.of(column, clients["requester"])
        acting = column == "peer_for_agency"
        extra[column] = Caller(
            column, f"urn:govshare:agency:{claimed}" if acting else base.uri,
            f"agencies/{claimed}" if acting else base.name, remote_key if acting else base.key,
            grpc.intercept_channel(base.channel, _Claiming(f"agencies/{claimed}")),
            via=base.uri if acting else "")
    return [extra[column] if column in extra else Caller.of(column, clients[column])
            for column in COLUMNS]


class _Details(collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                     "compression")), grpc.ClientCallDetails):
    pass


class _Claiming(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                grpc.StreamUnaryClientInterceptor):
    """Adds govshare-on-behalf-of to every call of a channel."""

    def __init__(self, agency: str):
        self._metadata = ((ON_BEHALF_KEY, agency),)

    def _claim(self, details: Any) -> _Details:
        return _Details(details.method, details.timeout,
                        (*(details.metadata or ()), *self._metadata), details.credentials,
                        details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._claim(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._claim(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._claim(details), requests)


def _gateway_caller(network: Any, column: str, gateway_id: str) -> Caller:
    """A gateway calling with its own TLS certificate, as a member asks its witnesses."""
    folder = network.layout.certs(gateway_id)
    credentials = grpc.ssl_channel_credentials(
        (folder / "ca.pem").read_bytes(), (folder / "tls.key").read_bytes(),
        (folder / "tls.pem").read_bytes())
    channel = grpc.secure_channel(network.target, credentials,
                                  [("grpc.ssl_target_name_override", "localhost")])
    return Caller(column, f"urn:govshare:gateway:{gateway_id}", "", None, channel)


# -- one valid request per RPC, prepared for one caller ----------------------------------------

Call = Callable[[], Any]


def _key(caller: Caller, fallback: AgencyClient) -> SigningKey:
    """The caller's signing key; staff and bare connections hold none and send `fallback`'s."""
    return caller.key or fallback.signing_key


def get_agency(w: World, c: Caller) -> Call:
    request = directory_pb2.GetAgencyRequest(name=w.owner.name)
    return lambda: c.directory.GetAgency(request, timeout=TIMEOUT)


def list_agencies(w: World, c: Caller) -> Call:
    return lambda: c.directory.ListAgencies(directory_pb2.ListAgenciesRequest(), timeout=TIMEOUT)


def register_agency(w: World, c: Caller) -> Call:
    agency_id = f"new-{c.slug}"
    request = directory_pb2.RegisterAgencyRequest(agency_id=agency_id, agency=directory_pb2.Agency(
        display_name="A new agency", region_code="440000",
        signing_certificate_pem=w.issue(agency_id)))
    return lambda: c.directory.RegisterAgency(request, timeout=TIMEOUT)


def suspend_agency(w: World, c: Caller) -> Call:
    spare = f"spare-{c.slug}"
    w.admin.register_agency(spare, "A spare agency", "440000", w.issue(spare))
    request = directory_pb2.SuspendAgencyRequest(name=f"agencies/{spare}", reason="inquiry")
    return lambda: c.directory.SuspendAgency(request, timeout=TIMEOUT)


def reinstate_agency(w: World, c: Caller) -> Call:
    spare = f"suspended-{c.slug}"
    w.admin.register_agency(spare, "A suspended agency", "440000", w.issue(spare))
    w.admin.suspend_agency(spare, "inquiry")
    request = directory_pb2.ReinstateAgencyRequest(name=f"agencies/{spare}", reason="cleared")
    return lambda: c.directory.ReinstateAgency(request, timeout=TIMEOUT)


def replace_signing_certificate(w: World, c: Caller) -> Call:
    spare = f"renewed-{c.slug}"
    w.admin.register_agency(spare, "A renewed agency", "440000", w.issue(spare))
    renewal = w.network.layout.root / "renewals" / spare
    CertificateAuthority.open(w.network.layout.ca_folder).issue_agency(spare, renewal)
    request = directory_pb2.ReplaceSigningCertificateRequest(
        name=f"agencies/{spare}", signing_certificate_pem=(renewal / "signing.pem").read_text(),
        reason="renewal before expiry")
    return lambda: c.directory.ReplaceSigningCertificate(request, timeout=TIMEOUT)


def publish_dataset(w: World, c: Caller) -> Call:
    manifest = support.manifest(f"{w.owner.name}/datasets/new-{c.slug}")
    envelope = support.sealed(_key(c, w.owner), envelopes.MANIFEST, manifest)
    return lambda: c.catalog.PublishDataset(support.publish_stream(envelope), timeout=TIMEOUT)


def get_dataset(w: World, c: Caller) -> Call:
    request = catalog_pb2.GetDatasetRequest(name=w.confidential)
    return lambda: c.catalog.GetDataset(request, timeout=TIMEOUT)


def list_datasets(w: World, c: Caller) -> Call:
    request = catalog_pb2.ListDatasetsRequest(parent=w.owner.name)
    return lambda: c.catalog.ListDatasets(request, timeout=TIMEOUT)


def list_dataset_versions(w: World, c: Caller) -> Call:
    request = catalog_pb2.ListDatasetVersionsRequest(parent=w.confidential)
    return lambda: c.catalog.ListDatasetVersions(request, timeout=TIMEOUT)


def withdraw_dataset(w: World, c: Caller) -> Call:
    name = publish(w.owner, f"old-{c.slug}")
    request = catalog_pb2.WithdrawDatasetRequest(name=name, reason="superseded")
    return lambda: c.catalog.WithdrawDataset(request, timeout=TIMEOUT)


def create_access_request(w: World, c: Caller) -> Call:
    statement = w.requester.access_request_statement(
        w.conditional, purpose="STATISTICS", purpose_text="quarterly report",
        legal_basis="Statistics Law of the PRC, article 7")
    statement.requester = c.name or w.requester.name
    envelope = support.sealed(_key(c, w.requester), envelopes.ACCESS_REQUEST, statement)
    request = exchange_pb2.CreateAccessRequestRequest(parent=statement.requester,
                                                      signed_statement=envelope)
    return lambda: c.exchange.CreateAccessRequest(request, timeout=TIMEOUT)


def get_access_request(w: World, c: Caller) -> Call:
    request = exchange_pb2.GetAccessRequestRequest(name=w.pending)
    return lambda: c.exchange.GetAccessRequest(request, timeout=TIMEOUT)


def list_access_requests(w: World, c: Caller) -> Call:
    request = exchange_pb2.ListAccessRequestsRequest(parent=w.owner.name,
                                                     direction=exchange_pb2.DIRECTION_INCOMING)
    return lambda: c.exchange.ListAccessRequests(request, timeout=TIMEOUT)


def _decision(w: World, c: Caller, outcome: int, reason: str = "") -> tuple[str, Any]:
    """A new pending request for the owner's dataset, and the caller's signed decision on it."""
    name = w.new_pending()
    return name, support.sealed(_key(c, w.owner), envelopes.DECISION,
                                support.decision(name, outcome, reason))


def approve_access_request(w: World, c: Caller) -> Call:
    name, envelope = _decision(w, c, exchange_pb2.DECISION_OUTCOME_APPROVE)
    request = exchange_pb2.ApproveAccessRequestRequest(name=name, signed_decision=envelope)
    return lambda: c.exchange.ApproveAccessRequest(request, timeout=TIMEOUT)


def deny_access_request(w: World, c: Caller) -> Call:
    name, envelope = _decision(w, c, exchange_pb2.DECISION_OUTCOME_DENY,
                               "no statistical need shown")
    request = exchange_pb2.DenyAccessRequestRequest(name=name, signed_decision=envelope)
    return lambda: c.exchange.DenyAccessRequest(request, timeout=TIMEOUT)


def withdraw_access_request(w: World, c: Caller) -> Call:
    request = exchange_pb2.WithdrawAccessRequestRequest(name=w.new_pending(),
                                                        reason="no longer needed")
    return lambda: c.exchange.WithdrawAccessRequest(request, timeout=TIMEOUT)


def list_grants(w: World, c: Caller) -> Call:
    request = exchange_pb2.ListGrantsRequest(parent=w.owner.name,
                                             direction=exchange_pb2.DIRECTION_INCOMING)
    return lambda: c.exchange.ListGrants(request, timeout=TIMEOUT)


def revoke_grant(w: World, c: Caller) -> Call:
    grant = ask(w.requester, w.unconditional).grant.name
    request = exchange_pb2.RevokeGrantRequest(name=grant, reason="court order")
    return lambda: c.exchange.RevokeGrant(request, timeout=TIMEOUT)


def fetch_dataset(w: World, c: Caller) -> Call:
    request = exchange_pb2.FetchDatasetRequest(dataset=w.confidential)
    return lambda: list(c.exchange.FetchDataset(request, timeout=TIMEOUT))


def watch_events(w: World, c: Caller) -> Call:
    request = exchange_pb2.WatchEventsRequest(parent=w.owner.name, cursor="0")

    def first_event() -> Any:
        stream = c.exchange.WatchEvents(request, timeout=TIMEOUT)
        try:
            return next(stream)
        finally:
            stream.cancel()

    return first_event


def list_audit_events(w: World, c: Caller) -> Call:
    request = audit_pb2.ListAuditEventsRequest()
    return lambda: c.audit.ListAuditEvents(request, timeout=TIMEOUT)


def get_audit_event(w: World, c: Caller) -> Call:
    request = audit_pb2.GetAuditEventRequest(name=f"auditEvents/{w.publish_leaf}")
    return lambda: c.audit.GetAuditEvent(request, timeout=TIMEOUT)


def get_peer_audit_event(w: World, c: Caller) -> Call:
    request = audit_pb2.GetAuditEventRequest(name="auditEvents/0", log_origin=origin(PEER))
    return lambda: c.audit.GetAuditEvent(request, timeout=TIMEOUT)


def get_checkpoint(w: World, c: Caller, log: str = "") -> Call:
    request = audit_pb2.GetCheckpointRequest(log_origin=log)
    return lambda: c.audit.GetCheckpoint(request, timeout=TIMEOUT)


def get_inclusion_proof(w: World, c: Caller, log: str = "") -> Call:
    request = audit_pb2.GetInclusionProofRequest(leaf_index=0, log_origin=log)
    return lambda: c.audit.GetInclusionProof(request, timeout=TIMEOUT)


def get_consistency_proof(w: World, c: Caller, log: str = "") -> Call:
    request = audit_pb2.GetConsistencyProofRequest(first_size=1, log_origin=log)
    return lambda: c.audit.GetConsistencyProof(request, timeout=TIMEOUT)


def get_network_configuration(w: World, c: Caller) -> Call:
    request = network_pb2.GetNetworkConfigurationRequest(name="networkConfiguration")
    return lambda: c.network.GetNetworkConfiguration(request, timeout=TIMEOUT)


def add_checkpoint(w: World, c: Caller) -> Call:
    """The peer's log of one leaf, signed by the peer's signing key under its audit origin (as
    the configuration's audit_verifier_key for it says), asked for a first cosignature."""
    signer = note.NoteSigner(origin(PEER), SigningKey.load(
        w.network.layout.certs(PEER) / "signing.key"))
    checkpoint = note.Checkpoint(origin(PEER), 1, merkle.leaf_hash(b"a peer's first event"))
    request = witness_pb2.AddCheckpointRequest(
        old_size=0, checkpoint=note.sign_note(checkpoint.to_text(), [signer]))
    return lambda: c.witness.AddCheckpoint(request, timeout=TIMEOUT)


def list_witnessed_checkpoints(w: World, c: Caller) -> Call:
    return lambda: c.witness.ListWitnessedCheckpoints(
        witness_pb2.ListWitnessedCheckpointsRequest(), timeout=TIMEOUT)


def list_network_changes(w: World, c: Caller) -> Call:
    return lambda: c.replication.ListNetworkChanges(
        replication_pb2.ListNetworkChangesRequest(since_position=0), timeout=TIMEOUT)


REQUESTS: dict[str, Callable[[World, Caller], Call]] = {  # by Row.label
    "DirectoryService.GetAgency": get_agency,
    "DirectoryService.ListAgencies": list_agencies,
    "DirectoryService.RegisterAgency": register_agency,
    "DirectoryService.SuspendAgency": suspend_agency,
    "DirectoryService.ReinstateAgency": reinstate_agency,
    "DirectoryService.ReplaceSigningCertificate": replace_signing_certificate,
    "CatalogService.PublishDataset": publish_dataset,
    "CatalogService.GetDataset": get_dataset,
    "CatalogService.ListDatasets": list_datasets,
    "CatalogService.ListDatasetVersions": list_dataset_versions,
    "CatalogService.WithdrawDataset": withdraw_dataset,
    "ExchangeService.CreateAccessRequest": create_access_request,
    "ExchangeService.GetAccessRequest": get_access_request,
    "ExchangeService.ListAccessRequests": list_access_requests,
    "ExchangeService.ApproveAccessRequest": approve_access_request,
    "ExchangeService.DenyAccessRequest": deny_access_request,
    "ExchangeService.WithdrawAccessRequest": withdraw_access_request,
    "ExchangeService.ListGrants": list_grants,
    "ExchangeService.RevokeGrant": revoke_grant,
    "ExchangeService.FetchDataset": fetch_dataset,
    "ExchangeService.WatchEvents": watch_events,
    "AuditService.ListAuditEvents": list_audit_events,
    "AuditService.GetAuditEvent": get_audit_event,
    f"AuditService.GetAuditEvent ({OTHER_LOG})": get_peer_audit_event,
    "AuditService.GetCheckpoint": get_checkpoint,
    f"AuditService.GetCheckpoint ({OTHER_LOG})": functools.partial(get_checkpoint,
                                                                   log=origin(PEER)),
    "AuditService.GetInclusionProof": get_inclusion_proof,
    f"AuditService.GetInclusionProof ({OTHER_LOG})": functools.partial(get_inclusion_proof,
                                                                       log=origin(PEER)),
    "AuditService.GetConsistencyProof": get_consistency_proof,
    f"AuditService.GetConsistencyProof ({OTHER_LOG})": functools.partial(
        get_consistency_proof, log=origin(PEER)),
    "NetworkService.GetNetworkConfiguration": get_network_configuration,
    "WitnessService.AddCheckpoint": add_checkpoint,
    "WitnessService.ListWitnessedCheckpoints": list_witnessed_checkpoints,
    "ReplicationService.ListNetworkChanges": list_network_changes,
}


# -- running the matrix ------------------------------------------------------------------------


def _outcome(call: Call) -> tuple[str, str | None]:
    try:
        call()
    except grpc.RpcError as exc:
        # a refused handshake carries no ErrorInfo, so no reason
        return exc.code().name, from_rpc_error(exc).reason or None
    return "OK", None


def _tree_size(network: Any) -> int:
    return network.gateway.db.reader().execute(
        "SELECT COUNT(*) FROM audit_leaves").fetchone()[0]


def _leaves_from(network: Any, leaf_index: int) -> list[dict[str, Any]]:
    rows = network.gateway.db.reader().execute(
        "SELECT record FROM audit_leaves WHERE leaf_index >= ? ORDER BY leaf_index",
        (leaf_index,)).fetchall()
    return [record.decode(row[0]) for row in rows]


def _audit_problem(leaves: list[dict[str, Any]], caller: Caller, action: str,
                   reason: str | None) -> str:
    """What is wrong with the audit events a refused cell left ("" when right)."""
    if reason is None:
        return f"a refused handshake left {len(leaves)} audit events" if leaves else ""
    if len(leaves) != 1:
        return f"{len(leaves)} audit events instead of the one refusal"
    leaf = leaves[0]
    seen = (leaf["actor"], leaf.get("via", ""), leaf["action"], leaf["outcome"],
            leaf["reason"].split(":")[0])
    wanted = (caller.uri, caller.via, action, record.REFUSED, reason)
    return "" if seen == wanted else f"audit event {seen}, expected {wanted}"


def test_every_rpc_as_every_caller(member_network, tmp_path):
    network = member_network
    world = _world(network)
    callers = _callers(network, tmp_path)
    wrong = []
    try:
        for row in TABLE:
            for caller in callers:
                call = REQUESTS[row.label](world, caller)
                size = _tree_size(network)
                got = _outcome(call)
                status, reason = expected(row.outcome(caller.column))
                if got != (status, reason):
                    wrong.append(f"{row.label} as {caller.column}: got {got}, expected"
                                 f" {(status, reason)}")
                elif status != "OK":
                    problem = _audit_problem(_leaves_from(network, size), caller, row.action,
                                             reason)
                    if problem:
                        wrong.append(f"{row.label} as {caller.column}: {problem}")
    finally:
        for caller in callers:
            if caller.column not in (*AGENCY_COLUMNS, "admin", "auditor", *CLAIMS):
                caller.channel.close()  # the others are the network's clients or theirs
    assert not wrong, "\n".join(wrong)


def test_the_table_covers_exactly_the_rpcs_of_gateway_v1():
    rpcs = {f"{service.name}.{method.name}"
            for module in SERVICES for service in module.DESCRIPTOR.services_by_name.values()
            for method in service.methods}
    rows = [row.rpc for row in TABLE if not row.variant]
    assert len(rpcs) == 30
    assert sorted(rows) == sorted(rpcs)
    assert {row.rpc for row in TABLE} == rpcs
    assert sorted(REQUESTS) == sorted(row.label for row in TABLE)
    # the document says so: regions filter listings, they grant nothing
    assert all(row.outcome("same_region") == row.outcome("other_region") for row in TABLE)


def test_the_document_is_the_rendered_table():
    assert DOC.read_text() == render(), (
        "docs/AUTHORIZATION.md differs from the table; regenerate it with"
        " .venv/bin/python -m tests.support.authorization > docs/AUTHORIZATION.md")
