"""WitnessService: this gateway cosigns the checkpoints of its peers' audit logs, and lists
what it cosigned last of each."""

from __future__ import annotations

from typing import Any

from gateway.context import Call
from gateway.identity import AUDITOR, PEER
from gateway.rpc import Gateway, rpc
from gateway.v1 import witness_pb2, witness_pb2_grpc
from gateway.witness import GatewayWitness
from govshare import times
from govshare.transparency.witness import AddCheckpoint


class WitnessService(witness_pb2_grpc.WitnessServiceServicer):
    def __init__(self, gateway: Gateway, witness: GatewayWitness | None):
        self.gateway = gateway
        self._witness = witness

    @rpc("witness.add_checkpoint", allow=(PEER,))
    def AddCheckpoint(self, request: witness_pb2.AddCheckpointRequest, call: Call) -> Any:
        body = AddCheckpoint(request.old_size, tuple(request.consistency_proof),
                             request.checkpoint)
        # The door admits a gateway only as a peer, and only a network member has peers.
        assert call.peer is not None and self._witness is not None
        cosignature = self._witness.add_checkpoint(call.peer, body, call.caller.uri)
        return witness_pb2.AddCheckpointResponse(cosignature=cosignature)

    @rpc("witness.list", allow=(PEER, AUDITOR))
    def ListWitnessedCheckpoints(self, request: witness_pb2.ListWitnessedCheckpointsRequest,
                                 call: Call) -> Any:
        if self._witness is None:  # no network member: it follows no log
            return witness_pb2.ListWitnessedCheckpointsResponse()
        page = self._witness.list_cosigned(request)
        return witness_pb2.ListWitnessedCheckpointsResponse(
            witnessed_checkpoints=[witness_pb2.WitnessedCheckpoint(
                origin=log.origin, checkpoint=log.checkpoint + log.cosignature.encode(),
                update_time=times.to_timestamp(log.update_time)) for log in page.items],
            next_page_token=page.next_page_token)
