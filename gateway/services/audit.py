"""AuditService: read the audit log and prove what it holds.

Visibility (separation of duties): auditors read every event; an agency reads its own actions
and the events that name it among their subjects (every action on it and on its datasets),
but of refused calls only its own and the attempts on its datasets: a refusal answers its
caller and may tell it what only it may know (an owner's refused approval names the schema or
terms of a dataset the requester may not see), so it is not listed to the other agencies it
names; admins manage the directory and read no events. Checkpoints and proofs reveal only
hashes, so every authenticated caller may fetch them.

GetAuditEvent checks permission before existence: an agency gets PERMISSION_DENIED both for an
event that does not concern it and for one that does not exist; only an auditor learns NOT_FOUND.
"""

from __future__ import annotations

from typing import Any

from certs.identity import URN_PREFIX
from gateway.audit import listing
from gateway.context import Call
from gateway.identity import ADMIN, AGENCY, AUDITOR
from gateway.models import Checkpoint
from gateway.rpc import rpc
from gateway.storage import audit as sql
from gateway.storage import witness as witness_sql
from gateway.v1 import audit_pb2, audit_pb2_grpc
from govshare import errors, times
from govshare.names import AgencyName, AuditEventName
from govshare.transparency import merkle, note, record

EVERYONE = (AGENCY, ADMIN, AUDITOR)
READERS = (AGENCY, AUDITOR)


def event_proto(leaf_index: int, data: bytes) -> audit_pb2.AuditEvent:
    """The AuditEvent of a stored record: fields decoded from the exact bytes, which go along;
    DATA_LOSS for a record this gateway never wrote (altered on disk)."""
    try:
        return _event_proto(leaf_index, data)
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.DataLoss(
            f"the stored record of auditEvents/{leaf_index} is not one the gateway writes"
            f" ({type(exc).__name__}: {exc}); the log may have been altered: run govshare"
            " audit verify", reason="RECORD_CORRUPT", leaf_index=leaf_index) from None


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
    def __init__(self, gateway: Any):
        self.gateway = gateway

    @rpc("audit.list", allow=READERS)
    def ListAuditEvents(self, request: audit_pb2.ListAuditEventsRequest, call: Call) -> Any:
        page = self.gateway.audit_listing.list_events(call.caller, request)
        return audit_pb2.ListAuditEventsResponse(
            audit_events=[event_proto(leaf.leaf_index, leaf.record) for leaf in page.items],
            next_page_token=page.next_page_token)

    @rpc("audit.get", allow=READERS)
    def GetAuditEvent(self, request: audit_pb2.GetAuditEventRequest, call: Call) -> Any:
        leaf_index = AuditEventName.parse(request.name).leaf_index
        conn = self.gateway.db.reader()
        if call.caller.kind == AGENCY and not sql.leaf_visible(conn, leaf_index,
                                                                 listing.viewer(call.caller)):
            raise errors.PermissionDenied(
                f"{request.name} does not concern {call.caller.agency_name} (or does not"
                " exist); agencies read only the events that name them, and of refused calls"
                " only their own and those on their datasets",
                reason="EVENT_NOT_VISIBLE",
                name=request.name,
            )
        row = sql.get_leaf(conn, leaf_index)
        if row is None:
            raise errors.NotFound(f"{request.name} does not exist", name=request.name)
        return audit_pb2.GetAuditEventResponse(
            audit_event=event_proto(leaf_index, row.record)
        )

    @rpc("audit.checkpoint", allow=EVERYONE)
    def GetCheckpoint(self, request: audit_pb2.GetCheckpointRequest, call: Call) -> Any:
        latest = self._witnessed() if request.witnessed else self.gateway.log.checkpoint()
        signed = bytes(latest.note)
        verifier = self.gateway.note_signer.verifier()
        checkpoint = note.Checkpoint.parse(note.open_note(signed, [verifier]))
        # Signed notes allow more signature lines: the witnesses' follow the gateway's.
        cosignatures = witness_sql.cosignatures(self.gateway.db.reader(), checkpoint.size)
        return audit_pb2.GetCheckpointResponse(
            signed_checkpoint=signed.decode() + "".join(c.line for c in cosignatures),
            verifier_key=verifier.verifier_key,
            tree_size=checkpoint.size,
            root_hash=checkpoint.root_hash,
            origin=checkpoint.origin,
            create_time=times.to_timestamp(latest.create_time),
            origin_link=self._origin_link(checkpoint.size),
        )

    def _witnessed(self) -> Checkpoint:
        """The latest checkpoint a witness cosigned."""
        conn = self.gateway.db.reader()
        size = witness_sql.latest_cosigned_size(conn)
        checkpoint = sql.checkpoint_at(conn, size) if size is not None else None
        if checkpoint is None:
            raise errors.NotFound("no witness has cosigned a checkpoint of this gateway yet;"
                                  " ask for the latest checkpoint instead, or later",
                                  reason="NO_WITNESSED_CHECKPOINT")
        return checkpoint

    def _origin_link(self, size: int) -> audit_pb2.AuditEvent | None:
        """The latest audit.new_origin event in a tree of `size` (the one that began the
        current origin), for agencies to follow the change; None when the log never had one."""
        links = [(index, data) for index, data in
                 sql.records_of_action(self.gateway.db.reader(), record.NEW_ORIGIN) if index < size]
        return event_proto(*links[-1]) if links else None

    @rpc("audit.prove.inclusion", allow=EVERYONE)
    def GetInclusionProof(self, request: audit_pb2.GetInclusionProofRequest, call: Call) -> Any:
        latest = self._latest_size()
        size = request.tree_size or latest
        _check_size("tree_size", request.tree_size, size, latest)
        if request.leaf_index < 0:
            raise errors.InvalidArgument("leaf_index must not be negative", field="leaf_index")
        if request.leaf_index >= size:
            raise errors.OutOfRange(
                f"leaf_index {request.leaf_index} is not in a tree of size {size}; it must be"
                " smaller than tree_size",
                field="leaf_index", leaf_index=request.leaf_index, tree_size=size,
            )
        conn = self.gateway.db.reader()
        hashes = merkle.inclusion_proof(
            request.leaf_index, size, lambda coords: sql.fetch_nodes(conn, coords)
        )
        leaf = sql.fetch_nodes(conn, [(0, request.leaf_index)])[0]
        return audit_pb2.GetInclusionProofResponse(
            leaf_index=request.leaf_index, tree_size=size, leaf_hash=leaf, hashes=hashes
        )

    @rpc("audit.prove.consistency", allow=EVERYONE)
    def GetConsistencyProof(
        self, request: audit_pb2.GetConsistencyProofRequest, call: Call
    ) -> Any:
        latest = self._latest_size()
        second = request.second_size or latest
        _check_size("second_size", request.second_size, second, latest)
        if request.first_size < 1:
            raise errors.InvalidArgument(
                f"first_size must be at least 1, got {request.first_size}", field="first_size"
            )
        if request.first_size > second:
            raise errors.InvalidArgument(
                f"first_size {request.first_size} is larger than second_size {second}",
                field="first_size", first_size=request.first_size, second_size=second,
            )
        hashes = self.gateway.log.consistency_proof(request.first_size, second)
        return audit_pb2.GetConsistencyProofResponse(
            first_size=request.first_size, second_size=second, hashes=hashes
        )

    def _latest_size(self) -> int:
        return int(self.gateway.log.checkpoint().tree_size)


def _check_size(field: str, requested: int, size: int, latest: int) -> None:
    """A requested tree size must be positive and not beyond the latest checkpoint."""
    if requested < 0:
        raise errors.InvalidArgument(f"{field} must not be negative", field=field)
    if size > latest:
        raise errors.OutOfRange(
            f"{field} {size} is beyond the latest checkpoint's size {latest}",
            field=field, tree_size=latest,
        )
    if size == 0:
        raise errors.OutOfRange("the audit log is empty: there is nothing to prove",
                                field=field, tree_size=0)
