"""The gateway process: shared state (`Gateway`) and the gRPC server over mutual TLS."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from certs import ca as certs_ca
from certs.identity import identity_from_certificate
from gateway.audit.log import AuditLog
from gateway.audit.reader import AuditReader
from gateway.blobs import BlobStore, ForeignFolder
from gateway.carrier import Carrier
from gateway.catalog import Catalog, DatasetCache
from gateway.config import Config, ServerConfig
from gateway.directory import Directory, DirectoryCache
from gateway.events import Events
from gateway.evidence import NetworkEvidence
from gateway.exchange import Exchange
from gateway.federation import NetworkMembership, NotAMember, OwnMember
from gateway.fetch import Fetcher
from gateway.forwarding import Forwarding
from gateway.gossip import Gossip
from gateway.identity import Authenticator
from gateway.limits import Limiter
from gateway.paging import PageTokens
from gateway.peers import CosignatureCollector, PeerChannels
from gateway.refusals import RefusalBudget, SummaryWriter
from gateway.relaying import Relaying
from gateway.remote_logs import RemoteLogs
from gateway.replication import Replicas
from gateway.replicator import Replicator
from gateway.rpc import MessageCodecs
from gateway.services.audit import AuditService
from gateway.services.catalog import CatalogService
from gateway.services.directory import DirectoryService
from gateway.services.exchange import ExchangeService
from gateway.services.network import NetworkService
from gateway.services.replication import ReplicationService
from gateway.services.witness import WitnessService
from gateway.statements import StatementOpener
from gateway.storage import Database
from gateway.storage import catalog as catalog_sql
from gateway.storage import replica as replica_sql
from gateway.unit_of_work import Committed, UnitOfWork
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
from gateway.witness import GatewayWitness
from gateway.witness_http import WitnessHTTPServer
from govshare import errors, times
from govshare.signing import SigningKey, VerifyKey
from govshare.transparency import note

log = logging.getLogger("govshare.server")

T = TypeVar("T")

LOCK_FILE = "gateway.lock"
"""The lock file in the blob folder; the database's is `<database>.lock` beside the database's
real path (symlinks resolved)."""


class StartError(Exception):
    """The gateway cannot start: its files are in use, its port is taken, its database is
    damaged or has another name (a hard link), its blob folder belongs to another database or
    its database's content is elsewhere, its CRL, CA, TLS or signing certificates and keys
    are unusable, or its network configuration cannot make it a network member. The message
    says what to change."""

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (directory_pb2, "DirectoryService"),
        (catalog_pb2, "CatalogService"),
        (exchange_pb2, "ExchangeService"),
        (audit_pb2, "AuditService"),
        (network_pb2, "NetworkService"),
        (witness_pb2, "WitnessService"),
        (replication_pb2, "ReplicationService"),
    )
)


class Gateway:
    """What every service shares: config, storage, the unit of work and the audit log, identity
    and limits."""

    def __init__(self, config: Config, *, clock: Any = times.utcnow):
        self.config = config
        self.clock = clock
        self._locks = _lock_files(config)
        try:
            self._load(config)
        except BaseException:
            _unlock(self._locks)
            raise

    def _load(self, config: Config) -> None:
        self.ca_certificate = _read_tls(config, "ca", x509.load_pem_x509_certificate)
        self.credentials = server_credentials(config)
        try:
            self.authenticator = Authenticator(self.ca_certificate, config.path(config.tls.crl),
                                               self.clock)
        except certs_ca.CAError as exc:
            raise StartError(f"[tls] crl: {exc}; every caller's certificate is checked against"
                             " it: copy the national CA's current crl.pem there (govshare certs"
                             " crl re-signs an expired one) or correct [tls] crl") from None
        self.signing_key = _read_tls(config, "signing_key", SigningKey.from_pem)
        certificate = _read_tls(config, "signing_certificate", x509.load_pem_x509_certificate)
        self._check_signing_certificate(certificate)
        self.identity = identity_from_certificate(certificate)
        self.signing_certificate_pem = certificate.public_bytes(Encoding.PEM).decode()
        self.note_signer = note.NoteSigner(config.audit.origin, self.signing_key)
        self.network = self._network_membership(config, certificate)
        self.db = Database(config.path(config.storage.database),
                           synchronous=config.storage.synchronous, migrated=False)
        self.log = AuditLog(self.db, self.note_signer, config.audit.origin,
                            checkpoint_file=config.path(config.audit.checkpoint_file),
                            previous=config.audit.previous_verifiers(), clock=self.clock)
        self.work = UnitOfWork(self.db, self.log, clock=self.clock)
        limits = config.limits
        self.limiter = Limiter(limits.requests_per_second, limits.burst,
                               limits.max_streams_per_agency, config.max_streams)
        self.refusals = RefusalBudget(limits.audited_refusals_per_second,
                                      limits.audited_refusals_burst)
        self._summaries = SummaryWriter(self.refusals, self.work.append,
                                        limits.refusal_summary_seconds)
        self.page_tokens = PageTokens()
        self.agencies = DirectoryCache(self.db)
        self.datasets = DatasetCache(self.db)
        self.blobs = BlobStore(config.path(config.storage.blobs))
        self._wire_domain(config)

    def _wire_domain(self, config: Config) -> None:
        """Build the domain objects, each from the parts it uses: the one place they are put
        together. Those that read the time as they go get `now`, which reads `clock` at each
        call, so a clock the gateway is given later reaches them too."""
        self.statements = StatementOpener(self.agencies, self.authenticator)
        self.directory = Directory(self.db, self.work, self.agencies, self.statements,
                                   self.ca_certificate, config.limits, self.page_tokens,
                                   self.network)
        self.catalog = Catalog(self.db, self.work, self.datasets, self.blobs, self.statements,
                               config.limits, config.exchange, self.page_tokens)
        self.exchange = Exchange(self.db, self.work, self.datasets, self.agencies, self.catalog,
                                 self.statements, config.exchange, self.signing_key,
                                 config.limits, self.page_tokens)
        self.fetch = Fetcher(self.db, self.work, self.datasets, self.blobs, self.directory,
                             self.authenticator, config.limits, self.signing_key,
                             self.signing_certificate_pem, config.audit.origin, self.now,
                             self.identity.id if self.network is not None else "")
        self.events = Events(self.db, self.directory, self.authenticator, self.catalog,
                             self.now)
        self.audit_reader = AuditReader(self.db, self.log, self.page_tokens, config.limits)
        self.replicas = Replicas(self.db, self.work, self.network, self.ca_certificate,
                                 config.limits, config.network.replicate_seconds,
                                 self.identity.uri)
        self.forwarding = Forwarding(self.db, self.work, self.agencies, self.statements,
                                     self.network, self.identity.uri, self.now)
        self.witness = self.cosignatures = self.replicator = self.peer_channels = None
        self.evidence = self.gossip = None
        if self.network is not None:
            self.witness = GatewayWitness(self.work, self.network, self.witness_key,
                                          self.page_tokens, config.limits, self.refusals)
            self.peer_channels = PeerChannels(peer_tls_pair(config))
            self.cosignatures = CosignatureCollector(self.log, self.work, self.network,
                                                     self.peer_channels,
                                                     config.network.witness_push_seconds)
            self.replicator = Replicator(self.replicas, self.network, self.peer_channels,
                                         config.network.replicate_seconds)
            self.evidence = NetworkEvidence(self.work, self.identity.uri)
            self.gossip = Gossip(self.log, self.work, self.witness, self.evidence, self.network,
                                 self.peer_channels, config.network.gossip_seconds)
        self.relaying = Relaying(self.work, self.directory, self.authenticator, self.network,
                                 config.network.relay_idle_seconds)
        self.carrier = Carrier(self.forwarding, self.exchange, self.relaying, self.network,
                               self.peer_channels, config.network.replicate_seconds)
        self.remote_logs = RemoteLogs(self.network, self.peer_channels, config.audit.origin)

    def _network_membership(self, config: Config,
                            signing_certificate: x509.Certificate) -> NetworkMembership | None:
        """The network configuration this gateway holds when [network] configuration_file
        names one (None: not a network member); StartError when it cannot be held."""
        if not config.network.configuration_file:
            return None
        self.witness_key = _read_witness_key(config)
        own = OwnMember(self.identity.id,
                        _read_tls(config, "certificate", x509.load_pem_x509_certificate),
                        signing_certificate, config.audit.origin,
                        self.note_signer.verifier().verifier_key, self.witness_key.verifier())
        try:
            return NetworkMembership(config.path(Path(config.network.configuration_file)),
                                     self.ca_certificate, own, self.authenticator, self.clock,
                                     config.network.refresh_seconds)
        except NotAMember as exc:
            raise StartError(f"[network] configuration_file: {exc}") from None

    def _check_signing_certificate(self, certificate: x509.Certificate) -> None:
        """Refuse to start with a signing certificate that receipts and checkpoints could not be
        verified with (every fetch would otherwise fail at its very end)."""
        problem = self._signing_certificate_problem(certificate)
        if problem:
            raise StartError(f"[tls] signing_certificate {self.config.tls.signing_certificate}"
                             f" {problem}; issue the gateway's certificates again (govshare"
                             " certs issue-gateway) or correct the paths in [tls]")

    def _signing_certificate_problem(self, certificate: x509.Certificate) -> str:
        try:
            certs_ca.verify_chain(certificate, self.ca_certificate, now=self.now())
            identity = identity_from_certificate(certificate)
            key = VerifyKey.from_certificate(certificate)
        except (ValueError, certs_ca.CAError) as exc:
            return f"is not a signing certificate of the national CA: {exc}"
        if identity.kind != "gateway":
            return f"is issued to {identity.uri}, not to a gateway"
        if key != self.signing_key.verifier():
            return (f"does not hold the public key of [tls] signing_key"
                    f" {self.config.tls.signing_key}: they come from different issuances")
        if self.authenticator.revoked(certificate):
            return "has been revoked by the national CA"
        return ""

    def open(self, *, checkpoint_from_database: bool = False) -> None:
        """Verify the audit log and start committing; publish the checkpoint verifier key.

        StartError when the database turns out damaged or cannot be written: the first reads
        of most of its pages, and its first write, happen here. `checkpoint_from_database`:
        see AuditLog.check.

        A refused start changes nothing: the checks that can refuse run in the transaction
        that migrates the schema, which commits only once they pass (so the release that
        wrote the database can still open it), and before any blob or the checkpoint file is
        touched (a restored backup would otherwise delete the content of the newer database
        the operator puts back)."""
        try:
            with self.db.migrating():
                self.log.check(checkpoint_from_database=checkpoint_from_database)
                if checkpoint_from_database:  # vouched for, yet perhaps an older copy
                    replica_sql.new_epoch(self.db.writer)
                self._recover_blobs()  # refuses a foreign folder before removing anything
            self.log.start(self.work, self.identity.uri)
            if self.network is not None:
                self.network.start(self.work.append, self.identity.uri)
                self.replicas.forget_removed()  # removed while this gateway was stopped
                self.network.on_taken(self.replicas.forget_removed)
                self.cosignatures.start()
                self.replicator.start()
                self.carrier.start()
                self.gossip.start()
            self._summaries.start()
            self.fetch.break_interrupted(self.identity.uri)
        except sqlite3.DatabaseError as exc:
            raise StartError(f"the database {self.db.path} cannot be used: {exc}; if it is"
                             " damaged, restore it from a backup") from None
        except errors.GatewayError as exc:  # the first commit failed
            logged = exc.metadata.get("request_id")
            raise StartError(f"cannot write to the database {self.db.path}: "
                             + (f"the error logged with request id {logged} says why"
                                if logged else exc.message)
                             + "; if it is damaged, restore it from a backup; if its disk is"
                             " full, free space") from None
        self._publish_verifier_key()

    def open_new_origin(self) -> Committed:
        """Continue the audit log under [audit] origin (AuditLog.open_new_origin), as this
        gateway, and publish the new origin's verifier key; the caller closes the gateway."""
        self.db.migrate()
        committed = self.log.open_new_origin(self.work, self.identity.uri)
        # An older copy numbers its changes again from where it stopped: the other members
        # must take this gateway's directory and catalog anew (a new replication epoch). Only
        # once the new origin is committed, so that a refused one changes nothing.
        self.work.commit(lambda tx: (replica_sql.new_epoch(tx.conn), []))
        self._publish_verifier_key()
        return committed

    def _publish_verifier_key(self) -> None:
        key_file = self.config.path(self.config.audit.verifier_key_file)
        try:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(self.note_signer.verifier().verifier_key + "\n")
        except OSError as exc:
            raise StartError(f"[audit] verifier_key_file: cannot write {key_file}:"
                             f" {exc.strerror}") from None

    def _recover_blobs(self) -> None:
        try:
            self.blobs.recover(catalog_sql.stored_content(self.db.writer), self.db.path)
        except ForeignFolder as exc:
            raise StartError(str(exc)) from None

    def close(self) -> None:
        if self.cosignatures is not None:
            self.cosignatures.stop()
            self.replicator.stop()
            self.carrier.stop()
            self.gossip.stop()
            self.peer_channels.close()
        if self.network is not None:
            self.network.stop()
        self._summaries.stop()
        self.work.close()
        self.log.close()
        self.db.close()
        _unlock(self._locks)

    def now(self) -> datetime:
        return self.clock()


@dataclass
class GatewayServer:
    """A configured, not yet started gRPC server and the gateway behind it."""

    server: grpc.Server
    port: int
    gateway: Gateway
    health_servicer: health.HealthServicer
    witness_http: WitnessHTTPServer | None = None
    """The witness's HTTP form ([network] witness_http_listen), None when not served."""

    def start(self) -> None:
        self.server.start()
        if self.witness_http is not None:
            self.witness_http.start()
        for name in ("", *SERVICE_NAMES):
            self.health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("gateway serving on port %d", self.port)

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting calls, let in-flight ones finish within `grace`, close storage."""
        self.health_servicer.enter_graceful_shutdown()
        grace = self.gateway.config.server.grace_seconds if grace is None else grace
        if self.witness_http is not None:
            self.witness_http.stop()
        self.server.stop(grace).wait()
        self.gateway.close()
        log.info("gateway stopped")

    def wait(self) -> None:
        self.server.wait_for_termination()


def create_server(config: Config, *, clock: Any = times.utcnow,
                  checkpoint_from_database: bool = False) -> GatewayServer:
    """Build the gateway and its server bound to config.server.listen (port 0 picks one).

    Raises StartError when another gateway uses the same files or the port is taken: before
    any start-up recovery, so a second gateway never alters a live one's state.
    `checkpoint_from_database`: see AuditLog.open."""
    gateway = Gateway(config, clock=clock)
    try:
        server, health_servicer = _grpc_server(config, gateway)
    except BaseException:
        gateway.close()
        raise
    witness_http = None
    try:
        port = _bind(server, config, gateway.credentials)
        witness_http = _witness_http(config, gateway)
        # Recovery runs once the port is ours, so a gateway that cannot serve changes nothing;
        # no call is served before start().
        gateway.open(checkpoint_from_database=checkpoint_from_database)
    except BaseException:
        if witness_http is not None:
            witness_http.stop()
        server.stop(None)
        gateway.close()
        raise
    return GatewayServer(server, port, gateway, health_servicer, witness_http)


def _grpc_server(config: Config, gateway: Gateway) -> tuple[grpc.Server, health.HealthServicer]:
    limits = config.limits
    options = [
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_send_message_length", limits.max_message_bytes),
        ("grpc.so_reuseport", 0),
        *_keepalive_options(config.server),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.server.max_workers,
                                   thread_name_prefix="rpc"),
        options=options,
        maximum_concurrent_rpcs=config.server.max_workers * 4,
        interceptors=(MessageCodecs(),),
    )
    register_services(server, gateway)
    health_servicer = health.HealthServicer(
        experimental_non_blocking=True,
        experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1),
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    return server, health_servicer


def register_services(server: grpc.Server, gateway: Gateway) -> None:
    """Add every gateway.v1 service to `server`, each servicer given the domain objects and
    parts it serves through; `gateway` goes along as what the RPC wrapper uses at the door of
    every call (gateway.rpc.Gateway)."""
    directory_pb2_grpc.add_DirectoryServiceServicer_to_server(
        DirectoryService(gateway, gateway.directory, gateway.replicas), server)
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(
        CatalogService(gateway, gateway.catalog, gateway.limiter, gateway.replicas), server)
    exchange_pb2_grpc.add_ExchangeServiceServicer_to_server(
        ExchangeService(gateway, gateway.exchange, gateway.fetch, gateway.events,
                        gateway.limiter, gateway.carrier), server)
    audit_pb2_grpc.add_AuditServiceServicer_to_server(
        AuditService(gateway, gateway.audit_reader, gateway.remote_logs), server)
    network_pb2_grpc.add_NetworkServiceServicer_to_server(
        NetworkService(gateway, gateway.network), server)
    witness_pb2_grpc.add_WitnessServiceServicer_to_server(
        WitnessService(gateway, gateway.witness), server)
    replication_pb2_grpc.add_ReplicationServiceServicer_to_server(
        ReplicationService(gateway, gateway.replicas), server)


def _keepalive_options(server: ServerConfig) -> list[tuple[str, int]]:
    """HTTP/2 keepalive (grpc core's doc/keepalive.md): ping a connection quiet for
    keepalive_seconds, between calls too, and close it when a ping goes unanswered for
    keepalive_timeout_seconds; a client host that vanished without FIN or RST would otherwise
    hold its streams' threads and slots until TCP gives up, hours later. Clients may ping every
    min_client_ping_seconds, with or without calls; more often, and after two strikes the
    gateway answers GOAWAY ENHANCE_YOUR_CALM. (max_pings_without_data limits clients only.)"""
    return [
        ("grpc.keepalive_time_ms", _ms(server.keepalive_seconds)),
        ("grpc.keepalive_timeout_ms", _ms(server.keepalive_timeout_seconds)),
        # grpc 1.85 closes the connection when any PING goes unanswered this long (default
        # 1 minute), whatever keepalive_timeout_ms says (measured: tests/faults/test_dead_peers)
        ("grpc.http2.ping_timeout_ms", _ms(server.keepalive_timeout_seconds)),
        ("grpc.keepalive_permit_without_calls", 1),
        # GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS (its key has no "recv")
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(server.min_client_ping_seconds)),
    ]


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _bind(server: grpc.Server, config: Config, credentials: grpc.ServerCredentials) -> int:
    """Bind the listening port (grpcio raises RuntimeError or returns 0 when it cannot)."""
    try:
        port = server.add_secure_port(config.server.listen, credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        raise StartError(f"cannot listen on {config.server.listen}: the address is in use or"
                         " not local; stop what uses it or change [server] listen (--listen)")
    return port


def _witness_http(config: Config, gateway: Gateway) -> WitnessHTTPServer | None:
    """The witness's HTTP form bound to [network] witness_http_listen, None when empty."""
    listen = config.network.witness_http_listen
    if not listen or gateway.witness is None:
        return None
    try:
        return WitnessHTTPServer(gateway, gateway.witness, listen)
    except (OSError, ValueError) as exc:
        raise StartError(f"[network] witness_http_listen: cannot listen on {listen}: {exc};"
                         " stop what uses it or change the address") from None


def _read_tls(config: Config, key: str, parse: Callable[[bytes], T]) -> T:
    """The file of [tls] `key`, parsed; StartError naming the key when it cannot be."""
    path = config.path(getattr(config.tls, key))
    try:
        return parse(path.read_bytes())
    except OSError as exc:
        raise StartError(f"[tls] {key}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise StartError(f"[tls] {key}: {path} is not what it should be: {exc}") from None
    except TypeError:  # cryptography's word for an encrypted key loaded without a password
        raise StartError(f"[tls] {key}: {path} is encrypted, and the gateway has no passphrase"
                         " to give: store it unencrypted, mode 0600") from None


def _read_witness_key(config: Config) -> SigningKey:
    """[network] witness_key, parsed; StartError saying what to fix when it cannot be."""
    path = config.path(Path(config.network.witness_key))
    try:
        return SigningKey.from_pem(path.read_bytes())
    except OSError as exc:
        raise StartError(f"[network] witness_key: cannot read {path}: {exc.strerror}; write"
                         " one with govshare network witness-key") from None
    except (ValueError, TypeError) as exc:
        raise StartError(f"[network] witness_key: {path} is not an unencrypted Ed25519"
                         f" private key (PEM): {exc}") from None


def server_credentials(config: Config) -> grpc.ServerCredentials:
    """The TLS pair and CA for grpc, checked here: grpc finds a bad key only when binding, and
    then reports the address as in use."""
    key, key_pem = _read_tls(config, "key", _private_key)
    certificate = _read_tls(config, "certificate", x509.load_pem_x509_certificate)
    if key.public_key() != certificate.public_key():
        raise StartError(f"[tls] key {config.tls.key} is not the key of [tls] certificate"
                         f" {config.tls.certificate}: they come from different issuances; issue"
                         " the gateway's certificates again (govshare certs issue-gateway) or"
                         " correct the paths in [tls]")
    ca = _read_tls(config, "ca", x509.load_pem_x509_certificate)
    return grpc.ssl_server_credentials(
        [(key_pem, certificate.public_bytes(Encoding.PEM))],
        root_certificates=ca.public_bytes(Encoding.PEM),
        require_client_auth=True,
    )


def peer_tls_pair(config: Config) -> tuple[bytes, bytes]:
    """The gateway's TLS key and certificate (PEM), to call the other members of its network
    as a client (each member's own certificate is the root trusted: gateway/peers.py)."""
    _, key_pem = _read_tls(config, "key", _private_key)
    return key_pem, config.path(config.tls.certificate).read_bytes()


def _private_key(data: bytes) -> tuple[PrivateKeyTypes, bytes]:
    """A PEM private key, parsed, and its bytes (grpc takes the bytes)."""
    return serialization.load_pem_private_key(data, None), data


def _lock_files(config: Config) -> list[int]:
    """Exclusive locks beside the database and in the blob folder, held while the gateway runs
    (the kernel drops them when the process dies, even by SIGKILL).

    The database's lock file is named after the database's real path, so a second gateway
    naming the same file through a symlink meets the same lock. A hard link is a second real
    path to the same file, and SQLite names its -wal journal after the path it opens (two
    names, two journals over one database), so a database with more than one name is
    refused."""
    given = config.path(config.storage.database)
    database = Path(os.path.realpath(given))
    blobs = config.path(config.storage.blobs)
    named = f"database {database}" + (f" (named {given} here)" if database != given else "")
    held: list[int] = []
    try:
        for path, what in ((database.with_name(database.name + ".lock"), named),
                           (blobs / LOCK_FILE, f"blob folder {blobs}")):
            held.append(_lock(path, what))
        _refuse_hard_links(database)
    except BaseException:
        _unlock(held)
        raise
    return held


def _refuse_hard_links(database: Path) -> None:
    try:
        status = database.stat()
    except FileNotFoundError:
        return  # a new database
    except OSError as exc:
        raise StartError(f"cannot read the database {database}: {exc.strerror}") from None
    links = status.st_nlink
    if stat.S_ISREG(status.st_mode) and links > 1:  # a folder is refused when opened
        raise StartError(f"the database {database} has {links} names (hard links): SQLite keeps"
                         " a journal per name, so a gateway writing through another name would"
                         " corrupt it; remove the other names (find / -samefile"
                         f" {database}) or give [storage] database a copy of its own")


def _lock(path: Path, what: str) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StartError(f"cannot create the lock file {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StartError(f"another gateway is using the {what}; stop it first, or give this one"
                         " its own [storage] database and blobs") from None
    return fd


def _unlock(held: list[int]) -> None:
    while held:
        os.close(held.pop())


def serve_forever(server: GatewayServer) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    import signal

    stopping = threading.Event()

    def handle(signum: int, _frame: Any) -> None:
        log.info("signal %d: shutting down", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    server.start()
    stopping.wait()
    server.stop()

