"""AuditService: read the audit log and prove what it holds.

What each caller may read is the audit log's rule (gateway/audit/reader.py): agencies and
auditors read events, admins manage the directory and read none; checkpoints and proofs reveal
only hashes, so every authenticated caller may fetch them. A read naming another member's log
(`log_origin`) is carried there for the calling agency (gateway/remote_logs.py); a peer calls
these reads for one of its agencies, which then reads this gateway's log as that agency.
"""

from __future__ import annotations

from typing import Any

from certs.identity import URN_PREFIX
from gateway.audit.reader import AuditReader
from gateway.context import Call
from gateway.identity import ADMIN, AGENCY, AUDITOR, PEER
from gateway.models import AuditLeaf
from gateway.remote_logs import RemoteLogs
from gateway.rpc import Gateway, rpc
from gateway.v1 import audit_pb2, audit_pb2_grpc
from govshare import errors, times
from govshare.names import AgencyName, AuditEventName
from govshare.transparency import record

EVERYONE = (AGENCY, ADMIN, AUDITOR)
READERS = (AGENCY, AUDITOR)


def event_proto(leaf: AuditLeaf) -> audit_pb2.AuditEvent:
    """The AuditEvent of a stored leaf: fields decoded from the record's exact bytes, which go
    along; DATA_LOSS for a record this gateway never wrote (altered on disk)."""
    try:
        return _event_proto(leaf.leaf_index, leaf.record)
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.DataLoss(
            f"the stored record of auditEvents/{leaf.leaf_index} is not one the gateway writes"
            f" ({type(exc).__name__}: {exc}); the log may have been altered: run govshare"
            " audit verify", reason="RECORD_CORRUPT", leaf_index=leaf.leaf_index) from None


def _event_proto(leaf_index: int, data: bytes) -> audit_pb2.AuditEvent:
    fields = record.decode(data)
    subjects = fields.get("subjects", [])
    return audit_pb2.AuditEvent(
        name=str(AuditEventName(leaf_index)),
        leaf_index=leaf_index,
        record=data,
        create_time=times.to_timestamp(fields["time"]),
        actor=fields["actor"],
        action=fields["action"],
        resources=fields.get("resources", []),
        outcome=audit_pb2.Outcome.Value(f"OUTCOME_{fields['outcome']}"),
        reason=fields.get("reason", ""),
        request_digest=fields.get("request_digest", ""),
        envelope_ids=fields.get("envelopes", []),
        via=fields.get("via", ""),
        agencies=list(dict.fromkeys(
            [*_actor_agency(fields["actor"]), *(s for s in subjects if _names_agency(s))]
        )),
    )


def _actor_agency(actor: str) -> list[str]:
    """["agencies/{id}"] when the actor is an agency, else []."""
    kind, _, ident = actor.removeprefix(URN_PREFIX).partition(":")
    return [str(AgencyName(ident))] if actor.startswith(URN_PREFIX) and kind == AGENCY else []


def _names_agency(subject: str) -> bool:
    """Whether a record's subject is an agency (the others are datasets). Records keep the
    subjects they were written with, whose ids may be looser than today's names
    (record.Event._subjects), so this reads their shape without checking the id."""
    return subject.startswith("agencies/") and subject.count("/") == 1


class AuditService(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, gateway: Gateway, reader: AuditReader, logs: RemoteLogs):
        self.gateway = gateway
        self._reader = reader
        self._logs = logs

    @rpc("audit.list", allow=READERS)
    def ListAuditEvents(self, request: audit_pb2.ListAuditEventsRequest, call: Call) -> Any:
        page = self._reader.list_events(call, request)
        return audit_pb2.ListAuditEventsResponse(
            audit_events=map(event_proto, page.items), next_page_token=page.next_page_token)

    @rpc("audit.get", allow=READERS, on_behalf=True)
    def GetAuditEvent(self, request: audit_pb2.GetAuditEventRequest, call: Call) -> Any:
        member = self._logs.member_for(call, request.log_origin)
        if member is not None:
            return self._logs.carry(call, member, "GetAuditEvent", request)
        leaf = self._reader.get_event(call, request.name)
        return audit_pb2.GetAuditEventResponse(audit_event=event_proto(leaf))

    @rpc("audit.checkpoint", allow=EVERYONE, on_behalf=True)
    def GetCheckpoint(self, request: audit_pb2.GetCheckpointRequest, call: Call) -> Any:
        member = self._logs.member_for(call, request.log_origin)
        if member is not None:
            return self._logs.carry(call, member, "GetCheckpoint", request)
        latest = self._reader.latest_checkpoint(witnessed=request.witnessed)
        return audit_pb2.GetCheckpointResponse(
            signed_checkpoint=latest.signed.decode(),
            verifier_key=latest.verifier_key,
            tree_size=latest.checkpoint.size,
            root_hash=latest.checkpoint.root_hash,
            origin=latest.checkpoint.origin,
            create_time=times.to_timestamp(latest.create_time),
            origin_link=event_proto(latest.origin_link) if latest.origin_link else None,
        )

    @rpc("audit.prove.inclusion", allow=EVERYONE, on_behalf=True)
    def GetInclusionProof(self, request: audit_pb2.GetInclusionProofRequest, call: Call) -> Any:
        member = self._logs.member_for(call, request.log_origin)
        if member is not None:
            return self._logs.carry(call, member, "GetInclusionProof", request)
        proof = self._reader.prove_inclusion(request.leaf_index, request.tree_size)
        return audit_pb2.GetInclusionProofResponse(
            leaf_index=proof.leaf_index, tree_size=proof.tree_size, leaf_hash=proof.leaf_hash,
            hashes=proof.hashes)

    # Peers ask it to compare checkpoints of this log that other witnesses cosigned
    # (gateway/gossip.py).
    @rpc("audit.prove.consistency", allow=(*EVERYONE, PEER), on_behalf=True)
    def GetConsistencyProof(
        self, request: audit_pb2.GetConsistencyProofRequest, call: Call
    ) -> Any:
        member = self._logs.member_for(call, request.log_origin)
        if member is not None:
            return self._logs.carry(call, member, "GetConsistencyProof", request)
        proof = self._reader.prove_consistency(request.first_size, request.second_size)
        return audit_pb2.GetConsistencyProofResponse(
            first_size=proof.first_size, second_size=proof.second_size, hashes=proof.hashes)
