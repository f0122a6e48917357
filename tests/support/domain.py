"""The domain in-process: a real Gateway on a laid-out network (real SQLite, certificates and
signatures), opened without a gRPC server, and the calls its agencies and administrator make
through gateway.context.Call with a test's own Transport (to the domain objects of a Gateway, or
of parts wired by hand)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import timestamp_pb2

from certs.ca import CertificateAuthority
from gateway import config, exchange
from gateway.catalog import Catalog
from gateway.context import Call
from gateway.directory import Directory
from gateway.events import Events
from gateway.identity import Authenticator
from gateway.models import Version
from gateway.network import NetworkLayout, lay_out
from gateway.server import Gateway
from gateway.storage import Database
from gateway.v1 import catalog_pb2, exchange_pb2
from govshare import columns, envelopes, signing
from tests.support.exchange import SCHEMA, MovableClock
from tests.support.network import AGENCIES

CONTENT = b"region,beds,doctors\n1,2,3\n4,5,6\n"


class LocalTransport:
    """The stream hooks of a call made in the test's own thread. `hang_up`: the client goes
    away as soon as the domain asks to hear of it, so a watch delivers what is there and ends."""

    def __init__(self, hang_up: bool = False) -> None:
        self.hang_up = hang_up
        self.metadata: tuple[tuple[str, Any], ...] = ()
        self.callbacks: list[Callable[[], None]] = []
        self.active = True

    def send_initial_metadata(self, initial_metadata: tuple[tuple[str, Any], ...]) -> None:
        self.metadata = initial_metadata

    def add_callback(self, callback: Callable[[], None]) -> bool:
        if not self.active:
            return False
        self.callbacks.append(callback)
        if self.hang_up:
            self.end()
        return True

    def is_active(self) -> bool:
        return self.active

    def end(self) -> None:
        self.active = False
        for callback in self.callbacks:
            callback()


def lay_out_network(root: Path) -> NetworkLayout:
    """A new network of AGENCIES under `root`, with a CRL that outlives any move of the clock
    (past its nextUpdate every call is refused)."""
    layout = lay_out(root, AGENCIES)
    CertificateAuthority.open(layout.ca_folder).renew_crl(validity_days=3650)
    return layout


class Wired(Protocol):
    """The domain objects the calls go to, and what they read: a Gateway, or parts a test wired
    by hand."""

    db: Database
    authenticator: Authenticator
    directory: Directory
    catalog: Catalog
    exchange: exchange.Exchange
    events: Events


class Calls:
    """The calls the agencies and the administrator of `layout` make to the domain objects of
    `wired`, received by `clock`."""

    def __init__(self, layout: NetworkLayout, clock: MovableClock, wired: Wired) -> None:
        self.layout = layout
        self.clock = clock
        self.wired = wired

    def register_all(self) -> None:
        for spec in AGENCIES:
            self.register(spec.id, spec.display_name, spec.region_code)

    def call(self, who: str, action: str, transport: LocalTransport | None = None) -> Call:
        """A Call by `who` (an agency id or "admin"), identified from its TLS certificate as
        the transport would identify it, received now by the gateway's clock."""
        pem = (self.layout.certs(who) / "tls.pem").read_bytes()
        caller = self.wired.authenticator.authenticate(pem)
        agency = self.wired.directory.registered(caller) if who != "admin" else None
        return Call(caller, action, transport or LocalTransport(), self.clock(), agency=agency)

    def signing_key(self, agency: str) -> signing.SigningKey:
        return signing.SigningKey.load(self.layout.certs(agency) / "signing.key")

    def register(self, agency: str, display_name: str, region_code: str) -> dict[str, Any]:
        pem = (self.layout.certs(agency) / "signing.pem").read_text()
        return self.wired.directory.register(self.call("admin", "directory.register"),
                                               agency, display_name, region_code, pem)

    def publish(self, agency: str, dataset_id: str, content: bytes = CONTENT, *,
                version: int = 1, classification: str = "INTERNAL",
                sharing_type: str = "UNCONDITIONAL") -> Version:
        """Publish `content` (CSV with the SCHEMA fields, column digests signed) as `version`
        of one of `agency`'s datasets; returns the version."""
        name = f"agencies/{agency}/datasets/{dataset_id}"
        found = columns.scan([content], catalog_pb2.MEDIA_TYPE_CSV, [f.name for f in SCHEMA])
        schema = [catalog_pb2.SchemaField(name=f.name, type=f.type, sensitivity=f.sensitivity,
                                          values_sha256=found.digests[f.name]) for f in SCHEMA]
        manifest = catalog_pb2.Manifest(
            dataset=name, version=version, title=f"{dataset_id} title",
            media_type=catalog_pb2.MEDIA_TYPE_CSV, schema=schema,
            classification=catalog_pb2.Classification.Value(f"CLASSIFICATION_{classification}"),
            sharing_type=catalog_pb2.SharingType.Value(f"SHARING_TYPE_{sharing_type}"),
            legal_basis="State Secrets Law art. 9" if sharing_type == "NOT_SHARED" else "",
            update_cycle=catalog_pb2.UPDATE_CYCLE_MONTHLY, content_sha256=signing.sha256(content),
            content_size=len(content), row_count=found.row_count, create_time=self._stamp(),
        )
        envelope = envelopes.seal(self.signing_key(agency), envelopes.MANIFEST, manifest)
        call = self.call(agency, "catalog.dataset.publish")
        return self.wired.catalog.publish(call, envelope, [content])[0]

    def ask(self, agency: str, dataset: str, *, fields: tuple[str, ...] = (), version: int = 0,
            validate_only: bool = False) -> exchange.Created:
        """`agency`'s signed access request for `dataset` (ordinary purpose, 30 days)."""
        statement = exchange_pb2.AccessRequestStatement(
            requester=f"agencies/{agency}", dataset=dataset, fields=list(fields),
            purpose=exchange_pb2.PURPOSE_STATISTICS, purpose_text="quarterly statistics report",
            legal_basis="Statistics Law of the PRC, article 7", request_id=os.urandom(8).hex(),
            version=version, nonce=os.urandom(16), create_time=self._stamp(),
        )
        statement.duration.FromTimedelta(timedelta(days=30))
        envelope = envelopes.seal(self.signing_key(agency), envelopes.ACCESS_REQUEST, statement)
        return self.wired.exchange.create_request(
            self.call(agency, "exchange.request.create"), f"agencies/{agency}", envelope,
            validate_only)

    def decide(self, owner: str, request: str, *, approve: bool = True,
               fields: tuple[str, ...] = (), reason: str = "") -> exchange.Created:
        """`owner`'s signed decision on access request `request`."""
        outcome = (exchange_pb2.DECISION_OUTCOME_APPROVE if approve
                   else exchange_pb2.DECISION_OUTCOME_DENY)
        statement = exchange_pb2.DecisionStatement(
            access_request=request, outcome=outcome, fields=list(fields), reason=reason,
            nonce=os.urandom(16), create_time=self._stamp())
        envelope = envelopes.seal(self.signing_key(owner), envelopes.DECISION, statement)
        action = "exchange.request.approve" if approve else "exchange.request.deny"
        return self.wired.exchange.decide_request(self.call(owner, action), request, envelope,
                                                    approve)

    def _stamp(self) -> timestamp_pb2.Timestamp:
        """Now by the gateway's clock, as a signed statement's create_time."""
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(self.clock())
        return stamp

    def leaves(self, action: str) -> list[tuple[str, str]]:
        """(outcome, record) of the audit events of `action`, oldest first."""
        rows = self.wired.db.reader().execute(
            "SELECT outcome, record FROM audit_leaves WHERE action = ? ORDER BY leaf_index",
            (action,)).fetchall()
        return [(outcome, record.decode()) for outcome, record in rows]

    def watch(self, agency: str, cursor: str = "0",
              follow: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        """(type, resource) of the events `agency`'s watch from `cursor` delivers before its
        client hangs up."""
        call = self.call(agency, "exchange.watch", LocalTransport(hang_up=True))
        return [(exchange_pb2.EventType.Name(response.event.type), response.event.resource)
                for response in self.wired.events.watch(call, cursor, list(follow))]


class Domain(Calls):
    """A gateway opened on a new network under `root`, its AGENCIES registered, its clock
    movable."""

    def __init__(self, root: Path) -> None:
        layout = lay_out_network(root)
        clock = MovableClock()
        self.gateway = Gateway(config.load(layout.config_path), clock=clock)
        self.gateway.open()
        super().__init__(layout, clock, self.gateway)
        self.register_all()

    def close(self) -> None:
        self.gateway.close()
