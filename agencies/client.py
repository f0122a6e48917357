"""The SDK an agency system (or an administrator's or auditor's tool) uses to talk to a govshare
gateway.

    from agencies import AgencyClient

    with AgencyClient("127.0.0.1:8443", "certs/gd-health") as client:
        for agency in client.agencies():
            print(agency.name, agency.region_code)

A client connects with a certificate folder as the national CA issues it: `ca.pem`, `tls.pem`
and `tls.key` (mutual TLS), and for agencies `signing.pem` and `signing.key` (the Ed25519 key
that signs manifests, access requests and decisions; it never leaves this process). Every failed
call raises a typed `agencies.errors.GovshareError` subclass carrying the gRPC status, the
ErrorInfo reason and the message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc

from agencies import errors
from agencies.audit import AuditMixin
from agencies.catalog import CatalogMixin, agency_name
from agencies.exchange import ExchangeMixin
from agencies.listing import Listing
from agencies.network import NETWORK_MAX_AGE, NetworkMixin, member_at
from certs.identity import Identity, identity_from_certificate
from gateway.v1 import (
    audit_pb2_grpc,
    catalog_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    exchange_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
)
from govshare.names import AgencyName
from govshare.signing import SigningKey

__all__ = ["AdminClient", "AgencyClient", "AuditorClient", "BaseClient"]

T = TypeVar("T")

MAX_MESSAGE = 4 * 1024 * 1024
KEEPALIVE_OPTIONS = (
    # A PING after 30 s without traffic during a call, unanswered for 20 s, ends the call with
    # UNAVAILABLE: a fetch or watch to a gateway that vanished (no FIN or RST) would hang for
    # as long as TCP keeps the connection, hours. 30 s is above the gateway's shortest
    # accepted interval ([server] min_client_ping_seconds, 10 s); pinging more often than
    # that is answered with GOAWAY ENHANCE_YOUR_CALM.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.ping_timeout_ms", 20_000),  # what bounds the wait in grpc 1.85 (default 60 s)
    # grpc stops pinging after 2 pings while it sends nothing (by default), and a watch sends
    # nothing after its request.
    ("grpc.http2.max_pings_without_data", 0),
)


class BaseClient(NetworkMixin):
    """A mutual-TLS channel to the gateway and the typed stubs of every service.

    `network_configuration`: a signed network configuration this client held before (saved
    from an earlier run), so that a gateway serving an older one is caught, and the member it
    names at `target` is the only TLS server this client trusts;
    `network_max_age`: how long a fetched configuration is used before it is fetched again
    (agencies/network.py says why 10 minutes)."""

    def __init__(self, target: str, certs: str | Path, *, server_name: str | None = None,
                 timeout: float = 30.0, channel_options: Sequence[tuple[str, Any]] = (),
                 network_configuration: network_pb2.SignedNetworkConfiguration | None = None,
                 network_max_age: timedelta = NETWORK_MAX_AGE):
        from cryptography import x509

        folder = Path(certs)
        self.certs = folder
        self.target = target
        self.timeout = timeout
        tls_pem = (folder / "tls.pem").read_bytes()
        self.identity: Identity = identity_from_certificate(
            x509.load_pem_x509_certificate(tls_pem)
        )
        self._hold_network(network_configuration, network_max_age)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self._server_roots(),
            private_key=(folder / "tls.key").read_bytes(),
            certificate_chain=tls_pem,
        )
        options = {  # channel_options override the defaults
            "grpc.max_receive_message_length": MAX_MESSAGE,
            "grpc.max_send_message_length": MAX_MESSAGE,
            **dict(KEEPALIVE_OPTIONS),
            **dict(channel_options),
        }
        if server_name:
            options["grpc.ssl_target_name_override"] = server_name
        self.channel = grpc.secure_channel(target, credentials, options=list(options.items()))
        self.directory = directory_pb2_grpc.DirectoryServiceStub(self.channel)
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(self.channel)
        self.exchange = exchange_pb2_grpc.ExchangeServiceStub(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)
        self.network = network_pb2_grpc.NetworkServiceStub(self.channel)

    def _server_roots(self) -> bytes:
        """What the channel trusts as the gateway's TLS server: with a configuration held that
        names a member at `target`, only that member's TLS certificate (so a stand-in with any
        other certificate of the CA fails the handshake, as gateways pin each other); otherwise
        the national CA. Pinned for the channel's life: a member's new TLS certificate reaches a
        client built with a configuration naming it."""
        held = self._network
        member = member_at(held, self.target) if held is not None else None
        if member is not None:
            return member.tls_certificate_pem.encode()
        return (self.certs / "ca.pem").read_bytes()

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> BaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calling -----------------------------------------------------------------------------

    def _call(self, method: Callable[..., T], request: Any, **kwargs: Any) -> T:
        """Call a unary RPC once the gateway is known to be this client's member (or no
        network's: `_check_member`); failures become typed exceptions."""
        self._check_member()
        return self._invoke(method, request, **kwargs)

    def _invoke(self, method: Callable[..., T], request: Any, **kwargs: Any) -> T:
        """Call a unary RPC as it is; failures become typed exceptions."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            return method(request, **kwargs)
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc) from None

    def _stream(self, method: Callable[..., Any], request: Any, **kwargs: Any) -> Iterator[Any]:
        """Iterate a server-streaming RPC; failures become typed exceptions."""
        self._check_member()
        try:
            yield from method(request, **kwargs)
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc) from None

    def _pages(self, method: Callable[..., Any], request: Any, field: str) -> Listing:
        """Every item of a paged List RPC, fetching pages as the caller iterates."""
        return Listing(lambda: self._call(method, request), request, field)

    # -- directory ---------------------------------------------------------------------------

    def agency(self, name: str) -> directory_pb2.Agency:
        """One agency by resource name ("agencies/{id}") or bare id."""
        return self._call(self.directory.GetAgency,
                          directory_pb2.GetAgencyRequest(name=agency_name(name))).agency

    def agencies(self, region_code: str = "") -> Listing[directory_pb2.Agency]:
        """Every agency on the network (optionally within a region), page by page; the
        listing's `stale_members` name the members whose agencies may be missing or out of
        date."""
        request = directory_pb2.ListAgenciesRequest(region_code=region_code)
        return self._pages(self.directory.ListAgencies, request, "agencies")


class AdminClient(AuditMixin, BaseClient):
    """A staff client with the `admin` role: manages the directory."""

    def register_agency(self, agency_id: str, display_name: str, region_code: str,
                        signing_certificate_pem: str) -> directory_pb2.Agency:
        """Register an agency with its signing certificate."""
        request = directory_pb2.RegisterAgencyRequest(
            agency_id=agency_id,
            agency=directory_pb2.Agency(display_name=display_name, region_code=region_code,
                                        signing_certificate_pem=signing_certificate_pem),
        )
        return self._call(self.directory.RegisterAgency, request).agency

    def suspend_agency(self, name: str, reason: str) -> directory_pb2.Agency:
        """Suspend an agency; its calls are refused from now on."""
        request = directory_pb2.SuspendAgencyRequest(name=agency_name(name), reason=reason)
        return self._call(self.directory.SuspendAgency, request).agency

    def reinstate_agency(self, name: str, reason: str) -> directory_pb2.Agency:
        """Reinstate a suspended agency; its calls are served again from now on."""
        request = directory_pb2.ReinstateAgencyRequest(name=agency_name(name), reason=reason)
        return self._call(self.directory.ReinstateAgency, request).agency

    def replace_signing_certificate(self, name: str, signing_certificate_pem: str,
                                    reason: str) -> directory_pb2.Agency:
        """Give an agency a new signing certificate (a renewal, a lost or compromised key); the
        old one only verifies what it signed before."""
        request = directory_pb2.ReplaceSigningCertificateRequest(
            name=agency_name(name), signing_certificate_pem=signing_certificate_pem,
            reason=reason)
        return self._call(self.directory.ReplaceSigningCertificate, request).agency


class AuditorClient(AuditMixin, BaseClient):
    """A staff client with the `auditor` role: reads and verifies the audit log."""


class AgencyClient(CatalogMixin, ExchangeMixin, AuditMixin, BaseClient):
    """An agency's client: its TLS identity plus its signing key for statements."""

    def __init__(self, target: str, certs: str | Path, **kwargs: Any):
        super().__init__(target, certs, **kwargs)
        self.signing_key = SigningKey.load(Path(certs) / "signing.key")
        self.name = str(AgencyName(self.identity.id))
