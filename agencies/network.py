"""The network configuration in the SDK: fetched from the gateway, verified, held, and its CRL
applied to what the SDK verifies.

A client asks its gateway for the signed network configuration (NetworkService) and verifies it
itself with the national CA certificate of its folder (`ca.pem`), passing the configuration it
held before, so a gateway serving an older one (a replay) is refused with
`NetworkConfigurationRefused`. The CRL of the configuration held then refuses, with
`CertificateRevoked`, a receipt signed by a revoked gateway signing certificate and a manifest
signed by a revoked publisher certificate: a revocation reaches agencies with the configuration
they fetch anyway, with no other service to ask.

When it refreshes: on first use, once the held configuration has expired, and once it was
fetched longer than `network_max_age` ago (10 minutes by default). A configuration lives a day
by default, so waiting for its expiry would let a revocation published in the next one take up
to a day to reach the SDK; asking at every verification would double the calls. Ten minutes
bounds the delay at a cost of one small call per client per ten minutes.

A gateway that is no network member answers with no configuration, and one that predates
networks answers UNIMPLEMENTED: either way the SDK has nothing new to apply (and asks again after
`network_max_age`). It keeps a configuration it holds already; holding none, it verifies as
before, against the CA alone.

Which member is this client's gateway: the one the configuration names at the address the client
connects to (its `target`, compared exactly with the member's `address`), as gateways find each
other. Neither what the gateway presents nor the agency's region would do: a gateway's own
certificates only say which member it is, so any member's gateway answering at another's
address would pass; agency certificates carry no region code, the region in the directory is
the answering gateway's word, and staff clients have none. The address is the application's
choice and the configuration the authority's word, so a stand-in there (another member's
gateway, or any other certificate of the CA) is refused: its receipts are not signed with the
member's `signing_certificate_pem`, its checkpoints are not of the member's `audit_origin` and
`audit_verifier_key` (GatewayNotMember), and a client built with a configuration held trusts only
the member's `tls_certificate_pem` for TLS, so the stand-in fails the handshake. With a
configuration held, a gateway at an address of no member is refused too (GATEWAY_NOT_A_MEMBER).

That refusal comes before the client sends anything that acts: every call first makes sure the
configuration is held (fetched when due) and names a member at `target`, so an approval is
never made and then disowned, nor a fetch transferred and then dropped. The server certificate
would name the member without the address string, but grpc's Python client does not show it
to the caller (a second TLS connection only to read it would be another connection than the
one the calls take), so the address rule stays, checked first: `localhost:8443` is not
`127.0.0.1:8443`, and the message names the addresses the configuration gives.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from agencies import errors
from certs import member_signing
from certs import network_configuration as netconf
from gateway.v1 import network_pb2
from govshare import errors as core_errors
from govshare import signing

NETWORK_MAX_AGE = timedelta(minutes=10)
RESOURCE = "networkConfiguration"


class NetworkMixin:
    """The network configuration a client holds; relies on BaseClient's _invoke and `certs`."""

    network: Any
    certs: Path
    target: str
    """The address this client connects to: its gateway is the member named there."""

    def _hold_network(self, held: network_pb2.SignedNetworkConfiguration | None,
                      max_age: timedelta) -> None:
        """Start holding `held` (a configuration saved from an earlier run, verified now), to
        be refreshed once older than `max_age`."""
        self._network_max_age = max_age
        self._network: netconf.VerifiedConfiguration | None = None
        self._network_asked: datetime | None = None
        if held is not None:
            self._network = self._verified_network(held)
            self._network_asked = datetime.now(UTC)

    def network_configuration(self, *, refresh: bool = False
                              ) -> netconf.VerifiedConfiguration | None:
        """The network configuration held, fetched and verified first when due (see the module
        docstring) or when `refresh`; None while the gateway is no network member and nothing
        is held. NetworkConfigurationRefused when the gateway serves one that does not verify
        or is older than the one held (which stays held)."""
        now = datetime.now(UTC)
        held = self._network
        due = (refresh or self._network_asked is None
               or now - self._network_asked >= self._network_max_age
               or (held is not None and now >= held.expire_time))
        if due:
            self._network = self._fetch_network() or held
            self._network_asked = now
        return self._network

    def _fetch_network(self) -> netconf.VerifiedConfiguration | None:
        """The configuration the gateway serves, verified; None when it is no network member."""
        request = network_pb2.GetNetworkConfigurationRequest(name=RESOURCE)
        try:
            response = self._invoke(self.network.GetNetworkConfiguration, request)  # type: ignore[attr-defined]
        except errors.GovshareError as exc:
            # A gateway older than NetworkService cannot be a member: no configuration to apply.
            if exc.code == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise
        if not response.HasField("network_configuration"):
            return None
        return self._verified_network(response.network_configuration)

    def _verified_network(self, signed: network_pb2.SignedNetworkConfiguration
                          ) -> netconf.VerifiedConfiguration:
        ca = x509.load_pem_x509_certificate((self.certs / "ca.pem").read_bytes())
        try:
            return netconf.verify(signed, ca, datetime.now(UTC), self._network)
        except core_errors.NetworkConfigurationRejected as exc:
            raise errors.NetworkConfigurationRefused(
                f"the network configuration the gateway serves is refused: {exc.message}",
                reason=exc.reason, metadata=dict(exc.metadata)
            ) from None

    def _check_member(self) -> None:
        """Before every call but the configuration's own read: GatewayNotMember when the
        configuration held (fetched first when due) names no member at `target`, so nothing is
        done at a gateway whose answers this client would then disown. A gateway refusing the
        caller itself (a suspended agency, a revoked certificate) refuses the call too, which
        then says why."""
        with contextlib.suppress(errors.PermissionDenied, errors.Unauthenticated):
            self.network_member()

    def network_member(self) -> network_pb2.MemberGateway | None:
        """This client's gateway in the network configuration held: the member at `target`
        (see the module docstring); None while no configuration is held. GatewayNotMember when
        the configuration names no member at `target`."""
        configuration = self.network_configuration()
        if configuration is None:
            return None
        member = member_at(configuration, self.target)
        if member is None:
            addresses = ", ".join(f"{m.id} at {m.address}" for m in
                                  configuration.configuration.members)
            raise errors.GatewayNotMember(
                f"the gateway at {self.target} is no member of network"
                f" {configuration.network_id} version {configuration.version}, which names"
                f" {addresses}: connect to your gateway at the address the configuration names",
                reason="GATEWAY_NOT_A_MEMBER", metadata={"address": self.target, "member": ""})
        return member

    def _signing_member(self, envelope: Any, what: str) -> Signer | None:
        """The member whose signing certificate signed `envelope` (a grant or a receipt: the
        owner's gateway signs them, whichever member carried them here), picked by the
        signature's key id among the members' current and previous signing certificates of
        the configuration held; None while no configuration is held. VerificationError when
        no member's key made the signature, CertificateRevoked when the configuration's CRL
        revokes that member's signing certificate."""
        configuration = self.network_configuration()
        if configuration is None:
            return None
        key_id = envelope.signatures[0].key_id if len(envelope.signatures) == 1 else ""
        member = configuration.signer(key_id)
        if member is None:
            raise errors.VerificationError(
                f"the {what} is signed by a key of no member of network"
                f" {configuration.network_id} version {configuration.version} (key id"
                f" {key_id!r})")
        certificate = x509.load_pem_x509_certificate(member.signing_certificate_pem.encode())
        self._check_not_revoked(certificate, f"the signing certificate of {member.id} that"
                                f" signed the {what}")
        return Signer(member, *member_signing.signing_certificate(member, key_id))

    def _check_home(self, signer: Signer, owner: str, what: str) -> None:
        """A grant or receipt on a dataset of agency `owner` is signed by the member homing
        `owner`, which alone gives grants on its datasets and delivers them: this client's own
        for an agency of its gateway, else the member its directory entry names
        (`network_member`), which must serve the agency's region in the configuration held,
        as replication checks it. VerificationError otherwise."""
        configuration = self.network_configuration()
        assert configuration is not None  # the signer was found in it
        agency = self.agency(owner)  # type: ignore[attr-defined]
        home = self.network_member()
        if agency.network_member:
            home = configuration.member(agency.network_member)
            if home is None or not netconf.serves(home, agency.region_code):
                raise errors.VerificationError(
                    f"{owner} is of region {agency.region_code!r}, which"
                    f" {agency.network_member}, the member said to home it, does not serve in"
                    f" network {configuration.network_id} version {configuration.version}")
        assert home is not None  # a configuration is held: the client's member is named
        if signer.member.id != home.id:
            raise errors.VerificationError(
                f"the {what} on a dataset of {owner} is signed by {signer.member.id}, but"
                f" {owner} is homed at {home.id}, which alone signs for its datasets")

    def _check_carriers(self, carriers: list[str], signer: network_pb2.MemberGateway) -> None:
        """A receipt signed by `signer` names it first among the member gateways that carried
        the data, each once, and this client's member last (GatewayNotMember otherwise: another
        gateway answers at this client's address)."""
        if not carriers or carriers[0] != signer.id or len(set(carriers)) != len(carriers):
            raise errors.VerificationError(
                f"the receipt signed by {signer.id} names its carriers"
                f" {', '.join(carriers) or 'none'}, which do not begin with {signer.id}")
        member = self.network_member()
        assert member is not None  # a configuration is held: the signer was found in it
        if carriers[-1] == member.id:
            return
        signed = "the receipt is"
        if signer.id != member.id:
            signed = (f"the receipt is signed by another certificate (that of {signer.id}) than"
                      " the member's signing certificate, and")
        raise not_the_member(self.target, member, f"{signed} carried last by {carriers[-1]}")

    def _check_not_revoked(self, certificate: x509.Certificate, what: str) -> None:
        """CertificateRevoked when the CRL of the network configuration held revokes
        `certificate` (`what` names it in the message)."""
        configuration = self.network_configuration()
        if configuration is not None and configuration.is_revoked(certificate):
            raise errors.CertificateRevoked(
                f"{what} (serial {certificate.serial_number:x}) is revoked by the national CA,"
                f" as the CRL of network {configuration.network_id} version"
                f" {configuration.version} says: what it signed is not trusted",
                reason="CERTIFICATE_REVOKED",
                metadata={"serial": f"{certificate.serial_number:x}"})


@dataclass(frozen=True)
class Signer:
    """The member that signed a grant or a receipt, with the signing certificate it signed with
    and, for one it had before, when it was retired (None: its current one)."""

    member: network_pb2.MemberGateway
    certificate: x509.Certificate
    retired: datetime | None

    @property
    def key(self) -> signing.VerifyKey:
        return signing.VerifyKey.from_certificate(self.certificate)

    def check_time(self, stamp: Any, what: str) -> None:
        """VerificationError unless a statement saying it was signed at `stamp` may have been
        signed with this certificate (before its retirement, within its validity)."""
        try:
            member_signing.check_signed_while_current(self.certificate, self.retired, stamp)
        except ValueError as exc:
            raise errors.VerificationError(f"the {what} of {self.member.id}: {exc}") from None


def member_at(configuration: netconf.VerifiedConfiguration,
              target: str) -> network_pb2.MemberGateway | None:
    """The member whose configuration address is `target`, None when none is."""
    return next((m for m in configuration.configuration.members if m.address == target), None)


def not_the_member(target: str, member: network_pb2.MemberGateway,
                   what: str) -> errors.GatewayNotMember:
    """The refusal of a gateway at `target` that showed `what` instead of `member`'s own."""
    return errors.GatewayNotMember(
        f"the gateway at {target} is not {member.id}, the member the network configuration names"
        f" there: {what}; another gateway is answering at this address",
        reason="GATEWAY_NOT_THE_MEMBER", metadata={"address": target, "member": member.id})
