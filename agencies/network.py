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
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from agencies import errors
from certs import network_configuration as netconf
from gateway.v1 import network_pb2
from govshare import errors as core_errors

NETWORK_MAX_AGE = timedelta(minutes=10)
RESOURCE = "networkConfiguration"


class NetworkMixin:
    """The network configuration a client holds; relies on BaseClient's _call and `certs`."""

    network: Any
    certs: Path

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
            response = self._call(self.network.GetNetworkConfiguration, request)  # type: ignore[attr-defined]
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
