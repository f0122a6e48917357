"""NetworkService: the signed network configuration this gateway holds."""

from __future__ import annotations

from typing import Any

from gateway.context import Call
from gateway.federation import RESOURCE, NetworkMembership
from gateway.identity import ADMIN, AGENCY, AUDITOR, PEER
from gateway.rpc import Gateway, rpc
from gateway.v1 import network_pb2, network_pb2_grpc
from govshare import errors


class NetworkService(network_pb2_grpc.NetworkServiceServicer):
    def __init__(self, gateway: Gateway, network: NetworkMembership | None):
        self.gateway = gateway
        self._network = network

    # Served also once the configuration has expired: clients see which version is held. Peers
    # read it to compare it with their own (gateway/gossip.py).
    @rpc("network.configuration.get", allow=(AGENCY, ADMIN, AUDITOR, PEER), fail_closed=False)
    def GetNetworkConfiguration(self, request: network_pb2.GetNetworkConfigurationRequest,
                                call: Call) -> Any:
        if request.name != RESOURCE:
            raise errors.InvalidArgument(
                f"name must be {RESOURCE!r} (the singleton resource), got {request.name!r}",
                field="name")
        # Not being a member is the normal state of a standalone gateway, not a refusal: the SDK
        # asks on first use and every ten minutes, and a NOT_FOUND would write a REFUSED audit
        # event each time. A singleton exists whenever its parent does (AIP-156), so the read
        # succeeds and the unset field says that no configuration is held.
        if self._network is None:
            return network_pb2.GetNetworkConfigurationResponse()
        return network_pb2.GetNetworkConfigurationResponse(
            network_configuration=self._network.current.signed)
