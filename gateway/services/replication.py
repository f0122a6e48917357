"""ReplicationService: the other members of the network pull this gateway's changes."""

from __future__ import annotations

from typing import Any

from google.protobuf import empty_pb2

from gateway.context import Call
from gateway.identity import PEER
from gateway.models import NetworkChange
from gateway.replication import Replicas
from gateway.rpc import Gateway, rpc
from gateway.services.catalog import dataset_proto
from gateway.services.directory import agency_proto
from gateway.v1 import replication_pb2, replication_pb2_grpc


def change_proto(change: NetworkChange) -> replication_pb2.NetworkChange:
    if change.agency is not None:
        return replication_pb2.NetworkChange(position=change.position,
                                             agency=agency_proto(change.agency))
    if change.dataset is not None:
        return replication_pb2.NetworkChange(position=change.position,
                                             replication_id=change.replication_id,
                                             dataset=dataset_proto(change.dataset))
    return replication_pb2.NetworkChange(position=change.position,
                                         replication_id=change.replication_id,
                                         dataset_removed=empty_pb2.Empty())


class ReplicationService(replication_pb2_grpc.ReplicationServiceServicer):
    def __init__(self, gateway: Gateway, replicas: Replicas):
        self.gateway = gateway
        self._replicas = replicas

    @rpc("replication.list_changes", allow=(PEER,))
    def ListNetworkChanges(self, request: replication_pb2.ListNetworkChangesRequest,
                           call: Call) -> Any:
        changes, position, more, epoch = self._replicas.list_changes(
            request.since_position, request.epoch, request.page_size)
        return replication_pb2.ListNetworkChangesResponse(
            changes=map(change_proto, changes), next_position=position, more=more, epoch=epoch)
