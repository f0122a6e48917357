"""This gateway's membership of a national network: the signed network configuration it holds.

A gateway given `[network] configuration_file` is a member of a network. At start the file must
hold a configuration that `certs.network_configuration.verify` accepts with the national CA's
root, valid now, naming this gateway as a member with its own TLS and signing certificates and
its audit log's origin and verifier key; otherwise the gateway does not start (`NotAMember`, the
message says what to fix).

A thread reads the file again every `[network] refresh_seconds` (tests call `refresh`). The
file is verified only when its bytes changed since the last read, so one bad file is refused
once, not at every refresh; but a file refused as not yet valid (signed by an authority whose
clock runs ahead) is verified again at each refresh until it is taken or replaced, refused,
logged and audited only the first time. A changed file is taken when it verifies against the
configuration held (the same network, a higher version, a CRL no older) and still names this
gateway as it is; it then replaces the one held and its CRL is offered to the Authenticator
(the newer of it and `[tls] crl` is in force). Every file, the one at start too, is verified
with the Authenticator's CRL in force besides the held configuration's, so an authority that
`[tls] crl` revokes signs nothing this gateway takes. Anything else (unreadable, unverifiable,
expired, of an equal or lower version, no longer naming this gateway) is refused, logged, and
the one held stays. Each replacement (and the configuration loaded at start) is audited as
`network.configuration_loaded`, each refusal as `network.configuration_refused`, as the
gateway's own events.

The rule for a file of the version held but other bytes: refused as NOT_NEWER, like a lower
version. An authority never signs two configurations of one version; two of them are evidence of
a misbehaving authority (or a stolen key), which the audit log keeps, and the first one taken
stays, so what the gateway serves never flips between the two.

Once the configuration held has expired, `check_current` refuses every call but the
configuration's own read (FAILED_PRECONDITION NETWORK_CONFIGURATION_EXPIRED): as X-Road's
security servers stop when their global configuration expires, a gateway does not go on serving
on a description of the network that nobody vouches for any more.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from google.protobuf.message import DecodeError

from certs import ca as certs_ca
from certs import network_configuration as netconf
from gateway.identity import Authenticator, Caller
from gateway.periodic import Periodic
from gateway.v1 import network_pb2
from govshare import errors, signing, times
from govshare.transparency import record
from govshare.transparency.cosignature import CosignatureVerifier

log = logging.getLogger("govshare.network")

RESOURCE = "networkConfiguration"
"""The singleton resource name of the configuration a gateway holds (NetworkService)."""
CONFIGURATION_LOADED = "network.configuration_loaded"
"""The audit action of a configuration taken: at start, and each newer one a refresh takes."""
CONFIGURATION_REFUSED = "network.configuration_refused"
"""The audit action of a configuration file a refresh refused (the one held stays)."""


class NotAMember(Exception):
    """The configuration file cannot make this gateway a network member at start; the message
    says why and what to fix."""


@dataclass(frozen=True)
class OwnMember:
    """What a configuration must say of this gateway for the gateway to serve under it."""

    gateway_id: str
    tls_certificate: x509.Certificate
    signing_certificate: x509.Certificate
    audit_origin: str
    audit_verifier_key: str
    witness_key: signing.VerifyKey
    """The public key of [network] witness_key, which cosigns the other members' checkpoints."""

    def problem(self, configuration: netconf.VerifiedConfiguration) -> str:
        """Why `configuration` does not list this gateway as it is ("" when it does)."""
        member = configuration.member(self.gateway_id)
        if member is None:
            return (f"network {configuration.network_id!r} version {configuration.version}"
                    f" lists no member {self.gateway_id!r} (the id of this gateway's"
                    " certificates)")
        differs = [what for what, same in (
            ("TLS certificate ([tls] certificate)",
             _same_certificate(member.tls_certificate_pem, self.tls_certificate)),
            ("signing certificate ([tls] signing_certificate)",
             _same_certificate(member.signing_certificate_pem, self.signing_certificate)),
            ("audit_origin ([audit] origin)", member.audit_origin == self.audit_origin),
            ("audit_verifier_key (audit.vkey)",
             member.audit_verifier_key == self.audit_verifier_key),
            ("witness_verifier_key ([network] witness_key)",
             _witness_key(member) == self.witness_key),
        ) if not same]
        if differs:
            return (f"member {self.gateway_id!r} of network {configuration.network_id!r} version"
                    f" {configuration.version} has another {', '.join(differs)} than this"
                    " gateway")
        return ""


def _same_certificate(pem: str, certificate: x509.Certificate) -> bool:
    """Whether `pem` (a member certificate `verify` has parsed already) is `certificate`."""
    return x509.load_pem_x509_certificate(pem.encode()) == certificate


def _witness_key(member: network_pb2.MemberGateway) -> signing.VerifyKey:
    """The Ed25519 key of a member's witness_verifier_key (`verify` has parsed it already)."""
    return CosignatureVerifier.from_verifier_key(member.witness_verifier_key).key


def witness_verifier(member: network_pb2.MemberGateway) -> CosignatureVerifier:
    """The cosignature verifier of `member`'s witness_verifier_key."""
    return CosignatureVerifier.from_verifier_key(member.witness_verifier_key)


def peer_refused(caller: Caller, why: str) -> errors.PermissionDenied:
    return errors.PermissionDenied(
        f"{caller.uri} is not a peer of this gateway: {why}; only the gateways the network"
        " configuration names, with the TLS certificates it names, call as peers",
        reason="PEER_NOT_IN_NETWORK", identity=caller.uri)


class NetworkMembership:
    """The verified network configuration this gateway holds, kept current from its file."""

    def __init__(self, path: Path, ca_certificate: x509.Certificate, own: OwnMember,
                 authenticator: Authenticator, clock: Callable[[], datetime],
                 refresh_seconds: float):
        self._path = path
        self._ca = ca_certificate
        self._own = own
        self._authenticator = authenticator
        self._clock = clock
        self._lock = threading.Lock()
        self._rounds = Periodic("network-configuration", refresh_seconds, self.refresh)
        self._append: Callable[[list[record.Event]], object] | None = None
        self._actor = ""
        self._taken: list[Callable[[], object]] = []
        data = self._read_at_start()
        try:
            self.current = self._verified(data, None)
        except errors.NetworkConfigurationRejected as exc:
            raise NotAMember(f"{path}: {exc.message}; give the gateway the network's current"
                             " configuration (govshare network sign), or leave [network]"
                             " configuration_file empty to serve outside a network") from None
        self._seen: bytes | None = data
        self._retry = False
        """Whether the file of `_seen` was refused for a reason time may lift (NOT_YET_VALID)."""
        self._offer_crl(self.current)

    def start(self, append: Callable[[list[record.Event]], object], actor: str) -> None:
        """Audit the configuration loaded at start (as `actor`, the gateway) through `append`
        (the unit of work's, started), then refresh every refresh_seconds until `stop`."""
        self._append = append
        self._actor = actor
        append([self._event(CONFIGURATION_LOADED, self.current.signed, _loaded(self.current))])
        self._rounds.start()

    def stop(self) -> None:
        """End the refresh thread (before the unit of work closes)."""
        self._rounds.stop()

    def on_taken(self, callback: Callable[[], object]) -> None:
        """Call `callback` each time a refresh has taken a newer configuration."""
        self._taken.append(callback)

    @property
    def own_id(self) -> str:
        return self._own.gateway_id

    def others(self) -> list[network_pb2.MemberGateway]:
        """The members of the configuration held but this gateway, in configuration order."""
        return [m for m in self.current.configuration.members if m.id != self._own.gateway_id]

    def log_of(self, origin: str) -> network_pb2.MemberGateway | None:
        """The other member whose audit log has checkpoint origin `origin` (None: none)."""
        return next((m for m in self.others() if m.audit_origin == origin), None)

    def peer(self, caller: Caller) -> network_pb2.MemberGateway:
        """The member a gateway certificate's caller is: errors.PermissionDenied
        PEER_NOT_IN_NETWORK unless the configuration held names its id, other than this
        gateway's, with the very TLS certificate it presented."""
        member = self.current.member(caller.identity.id)
        if member is None or member.id == self._own.gateway_id:
            raise peer_refused(caller, f"network {self.current.network_id} version"
                                       f" {self.current.version} lists no other member of"
                                       f" id {caller.identity.id!r}")
        if not caller.certificate_pem or not _same_certificate(
                member.tls_certificate_pem, x509.load_pem_x509_certificate(caller.certificate_pem)):
            raise peer_refused(caller, "its TLS certificate is not the one the network"
                                       f" configuration version {self.current.version} names"
                                       " for it")
        return member

    def verify_elsewhere(self, signed: network_pb2.SignedNetworkConfiguration
                         ) -> netconf.VerifiedConfiguration:
        """A configuration another member holds, verified as this gateway verifies its own
        (the national CA's root, the CRL in force, valid now), but neither against the one
        held nor for naming this gateway: to compare the two."""
        return netconf.verify(signed, self._ca, self._clock(),
                              crl=self._authenticator.crl_in_force())

    def check_current(self, now: datetime) -> None:
        """errors.NetworkConfigurationExpired once the configuration held has expired at
        `now`: the door refuses calls with it."""
        held = self.current
        if now >= held.expire_time:
            raise errors.NetworkConfigurationExpired(
                f"this gateway's network configuration (network {held.network_id} version"
                f" {held.version}) expired at {times.to_text(held.expire_time)}, and the gateway"
                " serves nothing without a current one: its operator must put a newer"
                " configuration, signed by the network authority (govshare network sign), in"
                " [network] configuration_file", network=held.network_id, version=held.version,
                expire_time=times.to_text(held.expire_time))

    def refresh(self) -> bool:
        """Read the file again; True when a newer configuration replaced the one held (and
        the `on_taken` callbacks were called)."""
        taken = self._refresh()
        if taken:
            for callback in self._taken:
                try:
                    callback()
                except Exception:  # one part's failure must not keep the others from theirs
                    log.exception("[network] could not act on the configuration taken")
        return taken

    def _refresh(self) -> bool:
        with self._lock:
            data, unreadable = self._read()
            again = data == self._seen
            if again and not self._retry:
                return False
            self._seen = data
            try:
                if data is None:
                    raise errors.NetworkConfigurationInvalid(unreadable)
                verified = self._verified(data, self.current)
            except errors.NetworkConfigurationRejected as exc:
                self._retry = isinstance(exc, errors.NetworkConfigurationNotYetValid)
                if not again:  # a file retried was refused (logged, audited) once already
                    self._refuse(data, exc)
                return False
            self._retry = False
            if verified.payload == self.current.payload:
                return False  # the very same configuration, re-signed or re-written
            self.current = verified
            self._offer_crl(verified)
            log.info("[network] configuration_file: %s", _loaded(verified))
            self._audit(CONFIGURATION_LOADED, verified.signed, _loaded(verified))
            return True

    def _read(self) -> tuple[bytes | None, str]:
        """The file's bytes, or None and why it cannot be read."""
        try:
            return self._path.read_bytes(), ""
        except OSError as exc:
            return None, f"cannot read {self._path}: {exc.strerror}"

    def _read_at_start(self) -> bytes:
        data, unreadable = self._read()
        if data is None:
            raise NotAMember(f"{unreadable}; put the network's signed configuration there, or"
                             " leave [network] configuration_file empty to serve outside a"
                             " network")
        return data

    def _verified(self, data: bytes,
                  current: netconf.VerifiedConfiguration | None) -> netconf.VerifiedConfiguration:
        """The configuration of `data`, verified (against `current`) and naming this gateway."""
        # The CRL in force counts beside the held configuration's: `[tls] crl` may revoke the
        # authority before any configuration carries that revocation.
        verified = netconf.verify(_parse(data), self._ca, self._clock(), current,
                                  crl=self._authenticator.crl_in_force())
        problem = self._own.problem(verified)
        if problem:
            raise errors.NetworkConfigurationInvalid(
                f"{problem}: ask the network authority for a configuration listing this gateway"
                " as it is", reason="NETWORK_MEMBER_MISMATCH")
        return verified

    def _offer_crl(self, configuration: netconf.VerifiedConfiguration) -> None:
        where = f"the CRL of network configuration version {configuration.version}"
        try:
            self._authenticator.offer(configuration.crl, where)
        except certs_ca.CAError as exc:  # verify checked it: a malformed entry, at most
            log.error("[network] %s is not used: %s", where, exc)

    def _refuse(self, data: bytes | None, error: errors.NetworkConfigurationRejected) -> None:
        held = self.current
        log.error("[network] configuration_file: %s refused (%s: %s); keeping network %s"
                  " version %d", self._path, error.reason, error.message, held.network_id,
                  held.version)
        signed = _parse_quietly(data)
        self._audit(CONFIGURATION_REFUSED, signed, f"{error.reason}: {error.message}",
                    outcome=record.REFUSED)

    def _audit(self, action: str, signed: network_pb2.SignedNetworkConfiguration | None,
               reason: str, outcome: str = record.ALLOWED) -> None:
        if self._append is None:  # refreshed before start: nothing is audited yet
            return
        try:
            self._append([self._event(action, signed, reason, outcome)])
        except errors.GatewayError as exc:  # a full disk: the log says what happened
            log.error("could not audit %s: %s", action, exc.message)

    def _event(self, action: str, signed: network_pb2.SignedNetworkConfiguration | None,
               reason: str, outcome: str = record.ALLOWED) -> record.Event:
        digests = (signing.sha256(signed.envelope.payload).hex(),) if signed else ()
        return record.Event(self._actor, action, resources=(RESOURCE,), outcome=outcome,
                            reason=reason, envelope_ids=digests,
                            time=times.to_text(self._clock()))


def _loaded(configuration: netconf.VerifiedConfiguration) -> str:
    return (f"network {configuration.network_id} version {configuration.version} in force,"
            f" valid until {times.to_text(configuration.expire_time)}")


def _parse(data: bytes) -> network_pb2.SignedNetworkConfiguration:
    try:
        return network_pb2.SignedNetworkConfiguration.FromString(data)
    except DecodeError:
        raise errors.NetworkConfigurationInvalid(
            "the file is not a SignedNetworkConfiguration (as govshare network sign writes"
            " it)") from None


def _parse_quietly(data: bytes | None) -> network_pb2.SignedNetworkConfiguration | None:
    """The refused file's configuration, to record its payload digest, when it parses."""
    try:
        return _parse(data) if data is not None else None
    except errors.NetworkConfigurationInvalid:
        return None
