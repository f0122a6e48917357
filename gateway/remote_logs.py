"""Another member's audit log, read through this gateway for its agencies.

An agency connects to its home gateway only, yet the receipt of a fetch from another region is
signed by the owner's gateway and names a leaf of that gateway's log. The AuditService reads
that name a log (`log_origin`) other than this gateway's are carried to the member whose
`audit_origin` the configuration held names, on the calling agency's behalf
(govshare-on-behalf-of, as the carrier's calls), over the member's pinned channel, and its
answer is passed back unchanged: the signed checkpoint with the cosignatures it holds, proofs,
events as the member shows them to that agency. This gateway vouches for none of it; the SDK
verifies it with the member's keys of the configuration (agencies/audit.py).

Only agencies' reads are carried. Staff certificates are the national CA's, issued to a role
and bound to no gateway, so an auditor reads a member's log at that member's gateway. Carried,
the owner's gateway could check an agency's claim against its replicas (the agency is homed at
the carrying member) but an auditor's against nothing: staff are in no replicated directory,
and any member's operator could claim one and read every other member's whole log. A call a
member carried here is answered from this gateway's log only, never carried on.
"""

from __future__ import annotations

from typing import Any

from gateway.carrier import ask_member
from gateway.context import Call
from gateway.federation import NetworkMembership
from gateway.identity import AGENCY
from gateway.peers import PeerChannels
from gateway.v1 import audit_pb2_grpc, network_pb2
from govshare import errors

NOT_CARRIED = "AUDIT_LOG_NOT_CARRIED"
UNKNOWN = "AUDIT_LOG_UNKNOWN"


class RemoteLogs:
    """Where an audit read goes: this gateway's log, or the member's whose log it names."""

    def __init__(self, network: NetworkMembership | None, channels: PeerChannels | None,
                 origin: str):
        self._network = network
        self._channels = channels
        self._origin = origin
        """This gateway's log's origin ([audit] origin)."""

    def member_for(self, call: Call, log_origin: str) -> network_pb2.MemberGateway | None:
        """The member whose log `log_origin` names, the call to be carried there; None when it
        is this gateway's log (or names none). PERMISSION_DENIED AUDIT_LOG_NOT_CARRIED for a
        caller whose reads are not carried (checked first: permission before existence),
        NOT_FOUND AUDIT_LOG_UNKNOWN for an origin of no member."""
        if not log_origin or log_origin == self._origin:
            return None
        member = self._network.log_of(log_origin) if self._network is not None else None
        if call.via is not None:
            raise errors.PermissionDenied(
                f"{call.via.uri} carried a read of log {log_origin!r} here, but this gateway"
                f" answers for its own log only ({self._origin!r}): ask the member whose log"
                " it is", reason=NOT_CARRIED, log_origin=log_origin)
        if call.caller.kind != AGENCY:
            at = f" ({member.id} at {member.address})" if member is not None else ""
            raise errors.PermissionDenied(
                f"a gateway carries reads of other members' logs for its own agencies only:"
                f" {call.caller.kind} certificates read log {log_origin!r} at its member's"
                f" gateway{at}", reason=NOT_CARRIED, log_origin=log_origin)
        if member is None:
            raise errors.NotFound(
                f"no member of the network holds log {log_origin!r}: {self._known()}; name one"
                " of these, or leave log_origin empty for this gateway's",
                reason=UNKNOWN, log_origin=log_origin)
        return member

    def carry(self, call: Call, member: network_pb2.MemberGateway, method: str,
              request: Any) -> Any:
        """`method` of `member`'s AuditService for the calling agency; its answer unchanged."""
        return ask_member(self._channels, member, audit_pb2_grpc.AuditServiceStub, method,
                          request, call.caller.agency_name)

    def _known(self) -> str:
        """The logs a read may name, for a message."""
        if self._network is None:
            return f"this gateway is no network member, and its own log is {self._origin!r}"
        others = ", ".join(f"{m.audit_origin!r} ({m.id})" for m in self._network.others())
        return f"this gateway's log is {self._origin!r}, the other members' {others or 'none'}"
