"""The puller of replication: one thread asks every other member of the network, in turn,
for the changes of its directory and catalog since the position this gateway holds
(ReplicationService.ListNetworkChanges) and gives them to `Replicas.apply`.

Standing streams between gateways would hold a server thread each, at both ends, for as long
as they stand, and a national network has many members; a pull holds one only while it
answers. So this is one thread for all members, each call bounded in time and each round in
pages, and nothing held between rounds. A member that does not answer keeps its last copy, and
list replies name it stale (`Replicas.stale_members`) until a pull reaches it again.

`pull` asks every member now (the thread's round, and tests).
"""

from __future__ import annotations

import logging
import threading

import grpc

from gateway.federation import NetworkMembership
from gateway.peers import PeerChannels
from gateway.periodic import Periodic
from gateway.replication import Replicas
from gateway.v1 import network_pb2, replication_pb2, replication_pb2_grpc
from govshare import times

log = logging.getLogger("govshare.replication")

CALL_SECONDS = 10.0
"""How long one page of a member's changes may take."""
MAX_PAGES = 20
"""Pages taken from one member in one round: a member with more changes is taken further at
the next round, so one busy member never holds up the others."""
PAGE_SIZE = 500


class Replicator:
    """Pulls the other members' changes every interval, on one thread."""

    def __init__(self, replicas: Replicas, network: NetworkMembership, channels: PeerChannels,
                 interval: float):
        self._replicas = replicas
        self._network = network
        self._channels = channels
        self._lock = threading.Lock()
        self._rounds = Periodic("replication", interval, self.pull)

    def start(self) -> None:
        self._rounds.start()

    def stop(self) -> None:
        self._rounds.stop()

    def pull(self) -> dict[str, str]:
        """Take each other member's changes now; what came of it per member id (a member whose
        pull failed never keeps the others from theirs)."""
        with self._lock:
            return {member.id: self._pull_safely(member) for member in self._network.others()}

    def _pull_safely(self, member: network_pb2.MemberGateway) -> str:
        try:
            return self._pull_one(member)
        except Exception as exc:  # one member's failure, whatever it is, is that member's only
            log.exception("[network] could not take the changes of member %s", member.id)
            return f"failed: {type(exc).__name__}: {exc}"

    def _pull_one(self, member: network_pb2.MemberGateway) -> str:
        stub = replication_pb2_grpc.ReplicationServiceStub(self._channels.channel(member))
        epoch, position = self._replicas.position(member.id)
        changes: list[replication_pb2.NetworkChange] = []
        more = True  # until a page says otherwise: after a failed call, unknown
        try:
            for _ in range(MAX_PAGES):
                response = stub.ListNetworkChanges(replication_pb2.ListNetworkChangesRequest(
                    since_position=position, epoch=epoch, page_size=PAGE_SIZE),
                    timeout=CALL_SECONDS)
                if response.epoch != epoch:  # another history: what the previous one said is void
                    changes.clear()
                changes.extend(response.changes)
                position, epoch = response.next_position, response.epoch
                more = response.more
                if not more:
                    break
        except grpc.RpcError as exc:
            self._channels.failed(member, exc)
            log.warning("[network] could not pull the changes of member %s (%s): %s %s",
                        member.id, member.address, exc.code().name, exc.details())
            if not changes:
                return f"{exc.code().name}: {exc.details()}"
        refused = self._replicas.apply(member, changes, position, epoch, times.utcnow(), more)
        self._replicas.reached(member.id)
        return f"{len(changes)} changes, {refused} refused"
