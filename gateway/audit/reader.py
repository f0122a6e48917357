"""Reading the audit log, as each caller may: its events (listed and one by one), the latest
checkpoint and the proofs of what the log holds. The one place the log's visibility rule is
applied (storage.audit writes it in SQL):

Separation of duties: auditors read every event; an agency reads its own actions and the events
that name it among their subjects (every action on it and on its datasets), but of refused calls
only its own and the attempts on its datasets: a refusal answers its caller and may tell it what
only it may know (an owner's refused approval names the schema or terms of a dataset the
requester may not see), so it is not listed to the other agencies it names; admins manage the
directory and read no events. Checkpoints and proofs reveal only hashes, so every authenticated
caller may fetch them.

A single event is checked for permission before existence: an agency gets PERMISSION_DENIED both
for an event that does not concern it and for one that does not exist; only an auditor learns
NOT_FOUND.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway import paging
from gateway.audit.log import AuditLog
from gateway.config import LimitsConfig
from gateway.models import AuditLeaf, Checkpoint
from gateway.paging import Page, PageTokens
from gateway.storage import Database
from gateway.storage import audit as sql
from gateway.storage import witness as witness_sql
from gateway.v1 import audit_pb2
from govshare import errors, times
from govshare.names import AgencyName, AuditEventName, DatasetName
from govshare.transparency import note, record

DEFAULT_PAGE_SIZE = 100
AGENCY = "agency"
"""identity.AGENCY: the one kind of caller whose view of the log is narrowed."""

_OUTCOMES = {
    audit_pb2.OUTCOME_UNSPECIFIED: "",
    audit_pb2.OUTCOME_ALLOWED: record.ALLOWED,
    audit_pb2.OUTCOME_REFUSED: record.REFUSED,
}


def list_filters(request: audit_pb2.ListAuditEventsRequest) -> dict[str, Any]:
    """The storage filters a ListAuditEventsRequest asks for, validated."""
    if request.agency:
        AgencyName.parse(request.agency, "agency")
    if request.dataset:
        DatasetName.parse(request.dataset, "dataset")
    if request.outcome not in _OUTCOMES:
        raise errors.InvalidArgument(f"unknown outcome {request.outcome}", field="outcome")
    start = times.to_text(times.from_timestamp(request.start_time, "start_time")) \
        if request.HasField("start_time") else ""
    end = times.to_text(times.from_timestamp(request.end_time, "end_time")) \
        if request.HasField("end_time") else ""
    if start and end and end <= start:
        raise errors.InvalidArgument("end_time must be after start_time", field="end_time")
    return {
        "actor": request.actor,
        "action": request.action,
        "outcome": _OUTCOMES[request.outcome],
        "subjects": [name for name in (request.agency, request.dataset) if name],
        "start_time": start,
        "end_time": end,
    }


class Viewer(Protocol):
    """What the reader reads of a caller (identity.Caller): its kind, and for an agency its
    identity URI and agency name. Named here, not imported: the audit log sits below the
    request's context and the identities in the gateway's layers."""

    @property
    def kind(self) -> str:
        """"agency", "admin" or "auditor" (identity.AGENCY, ADMIN, AUDITOR)."""

    @property
    def uri(self) -> str:
        """The caller's identity URI."""

    @property
    def agency_name(self) -> str:
        """agencies/{id}, for an agency caller."""


class Reading(Protocol):
    """What the reader reads of a call (context.Call): who makes it."""

    @property
    def caller(self) -> Viewer:
        """The authenticated caller."""


@dataclass(frozen=True, slots=True)
class LatestCheckpoint:
    """The latest published checkpoint, as GetCheckpoint shows it."""

    signed: bytes
    """The signed note (C2SP checkpoint)."""
    verifier_key: str
    """The key that verifies it (the log's current one)."""
    checkpoint: note.Checkpoint
    """What it says: origin, tree size, root hash."""
    create_time: str
    origin_link: AuditLeaf | None
    """The audit.new_origin leaf that began the current origin, in the checkpoint's tree;
    None when the log never changed origin."""


@dataclass(frozen=True, slots=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    first_size: int
    second_size: int
    hashes: list[bytes]


class AuditReader:
    """The audit log as callers read it: events, each caller seeing what it may read (the rule
    in this module's docstring), checkpoints and proofs."""

    def __init__(self, db: Database, log: AuditLog, page_tokens: PageTokens,
                 limits: LimitsConfig):
        self._db = db
        self._log = log
        self._page_tokens = page_tokens
        self._limits = limits

    def list_events(self, call: Reading,
                    request: audit_pb2.ListAuditEventsRequest) -> Page[AuditLeaf]:
        """A page of the leaves `request` asks for that the caller may read, oldest first."""
        size = paging.page_size(request.page_size, default=DEFAULT_PAGE_SIZE)
        filters = list_filters(request)
        after = self._page_tokens.decode(request.page_token, request)
        caller = call.caller
        visible = ({"any_subject": [caller.agency_name],
                    "refusals_seen_by": _viewer(caller)} if caller.kind == AGENCY else {})
        found = sql.list_leaves(self._db.reader(), after=-1 if after is None else after,
                                limit=size + 1, **visible, **filters)
        return paging.page(self._page_tokens, self._limits, request, found, size, _leaf_index)

    def get_event(self, call: Reading, name: str) -> AuditLeaf:
        """The leaf `name` (auditEvents/{index}) names, if the caller may read it."""
        leaf_index = AuditEventName.parse(name).leaf_index
        conn = self._db.reader()
        caller = call.caller
        if caller.kind == AGENCY and not sql.leaf_visible(conn, leaf_index, _viewer(caller)):
            raise errors.PermissionDenied(
                f"{name} does not concern {caller.agency_name} (or does not exist); agencies"
                " read only the events that name them, and of refused calls only their own and"
                " those on their datasets",
                reason="EVENT_NOT_VISIBLE",
                name=name,
            )
        leaf = sql.get_leaf(conn, leaf_index)
        if leaf is None:
            raise errors.NotFound(f"{name} does not exist", name=name)
        return leaf

    def latest_checkpoint(self, *, witnessed: bool = False) -> LatestCheckpoint:
        """The latest published checkpoint (`witnessed`: the latest one a witness cosigned),
        opened with the log's key, with the witnesses' cosignatures appended as further
        signature lines (signed notes allow them), and its origin link."""
        latest = self._witnessed() if witnessed else self._log.checkpoint()
        verifier = self._log.signer.verifier()
        checkpoint = note.Checkpoint.parse(note.open_note(bytes(latest.note), [verifier]))
        cosignatures = witness_sql.cosignatures(self._db.reader(), checkpoint.origin,
                                                checkpoint.size)
        signed = bytes(latest.note) + "".join(c.line for c in cosignatures).encode()
        return LatestCheckpoint(signed, verifier.verifier_key, checkpoint, latest.create_time,
                                self._origin_link(checkpoint.size))

    def _witnessed(self) -> Checkpoint:
        """The latest checkpoint a witness cosigned."""
        conn = self._db.reader()
        size = witness_sql.latest_cosigned_size(conn, self._log.origin)
        checkpoint = sql.checkpoint_at(conn, size) if size is not None else None
        if checkpoint is None:
            raise errors.NotFound("no witness has cosigned a checkpoint of this gateway yet;"
                                  " ask for the latest checkpoint instead, or later",
                                  reason="NO_WITNESSED_CHECKPOINT")
        return checkpoint

    def _origin_link(self, size: int) -> AuditLeaf | None:
        """The latest audit.new_origin leaf in a tree of `size` (the one that began the current
        origin), for agencies to follow the change; None when the log never had one."""
        conn = self._db.reader()
        links = [index for index, _ in sql.records_of_action(conn, record.NEW_ORIGIN)
                 if index < size]
        return sql.get_leaf(conn, links[-1]) if links else None

    def prove_inclusion(self, leaf_index: int, tree_size: int) -> InclusionProof:
        """The proof that leaf `leaf_index` is in the tree of `tree_size` (0: the latest
        checkpoint's)."""
        latest = self._latest_size()
        size = tree_size or latest
        _check_size("tree_size", tree_size, size, latest)
        if leaf_index < 0:
            raise errors.InvalidArgument("leaf_index must not be negative", field="leaf_index")
        if leaf_index >= size:
            raise errors.OutOfRange(
                f"leaf_index {leaf_index} is not in a tree of size {size}; it must be smaller"
                " than tree_size",
                field="leaf_index", leaf_index=leaf_index, tree_size=size,
            )
        leaf_hash = sql.fetch_nodes(self._db.reader(), [(0, leaf_index)])[0]
        return InclusionProof(leaf_index, size, leaf_hash,
                              self._log.inclusion_proof(leaf_index, size))

    def prove_consistency(self, first_size: int, second_size: int) -> ConsistencyProof:
        """The proof that the tree of `second_size` (0: the latest checkpoint's) extends the
        tree of `first_size`."""
        latest = self._latest_size()
        second = second_size or latest
        _check_size("second_size", second_size, second, latest)
        if first_size < 1:
            raise errors.InvalidArgument(
                f"first_size must be at least 1, got {first_size}", field="first_size"
            )
        if first_size > second:
            raise errors.InvalidArgument(
                f"first_size {first_size} is larger than second_size {second}",
                field="first_size", first_size=first_size, second_size=second,
            )
        return ConsistencyProof(first_size, second,
                                self._log.consistency_proof(first_size, second))

    def _latest_size(self) -> int:
        return int(self._log.checkpoint().tree_size)


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


def _viewer(caller: Viewer) -> tuple[str, str]:
    """An agency caller's (identity URI, agency name), whose view of the log storage applies."""
    return caller.uri, caller.agency_name


def _leaf_index(leaf: AuditLeaf) -> int:
    return leaf.leaf_index
