"""Listing the audit log: the filters a ListAuditEvents request asks for, and what each
caller may read of the log (the rule is in services.audit's docstring): auditors every event,
an agency the events that name it, of refused calls only its own and those on its datasets."""

from __future__ import annotations

from typing import Any, Protocol

from gateway import paging
from gateway.config import LimitsConfig
from gateway.models import AuditLeaf
from gateway.paging import Page, PageTokens
from gateway.storage import Database
from gateway.storage import audit as sql
from gateway.v1 import audit_pb2
from govshare import errors, times
from govshare.names import AgencyName, DatasetName
from govshare.transparency import record

DEFAULT_PAGE_SIZE = 100

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


class Reader(Protocol):
    """What the listing reads of a caller (identity.Caller): its kind, and for an agency its
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


class AuditListing:
    """ListAuditEvents: pages of the log's leaves, each caller seeing what it may read."""

    def __init__(self, db: Database, page_tokens: PageTokens, limits: LimitsConfig):
        self._db = db
        self._page_tokens = page_tokens
        self._limits = limits

    def list_events(self, caller: Reader,
                    request: audit_pb2.ListAuditEventsRequest) -> Page[AuditLeaf]:
        """A page of the leaves `request` asks for that `caller` may read, oldest first."""
        size = paging.page_size(request.page_size, default=DEFAULT_PAGE_SIZE)
        filters = list_filters(request)
        after = self._page_tokens.decode(request.page_token, request)
        visible = ({"any_subject": [caller.agency_name],
                    "refusals_seen_by": viewer(caller)} if caller.kind == "agency" else {})
        found = sql.list_leaves(self._db.reader(), after=-1 if after is None else after,
                                limit=size + 1, **visible, **filters)
        return paging.page(self._page_tokens, self._limits, request, found, size, _leaf_index)


def viewer(caller: Reader) -> tuple[str, str]:
    """An agency caller's (identity URI, agency name), whose view of the log storage applies."""
    return caller.uri, caller.agency_name


def _leaf_index(leaf: AuditLeaf) -> int:
    return leaf.leaf_index
