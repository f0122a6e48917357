"""NetworkService: the signed network configuration this gateway holds."""

from __future__ import annotations

from typing import Any

from gateway.context import Call
from gateway.federation import RESOURCE
from gateway.identity import ADMIN, AGENCY, AUDITOR
from gateway.rpc import rpc
from gateway.v1 import network_pb2, network_pb2_grpc
from govshare import errors


class NetworkService(network_pb2_grpc.NetworkServiceServicer):
    def __init__(self, gateway: Any):
        self.gateway = gateway

    # Served also once the configuration has expired: clients see which version is held.
    @rpc("network.configuration.get", allow=(AGENCY, ADMIN, AUDITOR), fail_closed=False)
    def GetNetworkConfiguration(self, request: network_pb2.GetNetworkConfigurationRequest,
                                call: Call) -> Any:
        if request.name != RESOURCE:
            raise errors.InvalidArgument(
                f"name must be {RESOURCE!r} (the singleton resource), got {request.name!r}",
                field="name")
        if self.gateway.network is None:
            raise errors.NotFound(
                "this gateway is not a member of a network: it holds no network configuration",
                reason="NOT_A_NETWORK_MEMBER", name=RESOURCE)
        return network_pb2.GetNetworkConfigurationResponse(
            network_configuration=self.gateway.network.current.signed)
