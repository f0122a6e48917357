"""Access requests, the owners' decisions and grants: checks, sharing rules, commits.

Every state change runs as one change of the unit of work: the rows, the audit events and the
WatchEvents notifications are written together or not at all, and a refusal raised inside a
change leaves only its refusal event. The sharing rules themselves live in `gateway.policy`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from gateway import catalog, paging, policy
from gateway.catalog import Catalog, DatasetCache
from gateway.config import ExchangeConfig, LimitsConfig
from gateway.context import Call
from gateway.directory import DirectoryCache
from gateway.identity import ADMIN
from gateway.models import AccessRequest, Dataset, Event, Grant, Version
from gateway.paging import Page, PageTokens
from gateway.statements import StatementOpener
from gateway.storage import Database
from gateway.storage import catalog as catalog_sql
from gateway.storage import directory as directory_sql
from gateway.storage import events as events_sql
from gateway.storage import exchange as sql
from gateway.storage import replica as replica_sql
from gateway.text import check_reason, check_text
from gateway.unit_of_work import Tx, UnitOfWork
from gateway.v1 import catalog_pb2, envelope_pb2, exchange_pb2
from govshare import envelopes, errors, times
from govshare.enums import enum_value, optional_enum
from govshare.ids import new_id
from govshare.names import AccessRequestName, AgencyName, DatasetName, GrantName
from govshare.signing import SigningKey

MIN_NONCE_BYTES = 16
MAX_REQUEST_ID = 128
MAX_DECISION_REASON = 1000

PENDING, APPROVED, DENIED, WITHDRAWN = "PENDING", "APPROVED", "DENIED", "WITHDRAWN"


@dataclass
class Created:
    """The outcome of CreateAccessRequest: the request row and the grant row, if granted."""

    request: AccessRequest
    grant: Grant | None


def require_parent(call: Call, parent: str) -> str:
    """The caller's agency id when `parent` names the caller; PERMISSION_DENIED otherwise."""
    AgencyName.parse(parent, "parent")
    if parent != call.caller.agency_name:
        raise errors.PermissionDenied(
            f"parent {parent} is not the calling agency {call.caller.agency_name}",
            reason="PARENT_NOT_CALLER", parent=parent,
        )
    return call.caller.identity.id


class Exchange:
    """Access requests, decisions and grants between agencies, under the catalog's visibility
    rules and the sharing rules of `gateway.policy`."""

    def __init__(self, db: Database, work: UnitOfWork, datasets: DatasetCache,
                 agencies: DirectoryCache, catalog: Catalog, statements: StatementOpener,
                 config: ExchangeConfig, signing_key: SigningKey, limits: LimitsConfig,
                 page_tokens: PageTokens):
        self._db = db
        self._work = work
        self._datasets = datasets
        self._agencies = agencies
        self._catalog = catalog
        self._statements = statements
        self._config = config
        self._signing_key = signing_key
        self._limits = limits
        self._page_tokens = page_tokens

    def check_fresh(self, stamp: Timestamp, field: str, now: datetime) -> None:
        """Refuse a signed create_time outside the configured clock-skew window."""
        skew = self._config.clock_skew_seconds
        if not stamp.seconds and not stamp.nanos:
            raise errors.InvalidArgument(f"{field} is required", field=field)
        offset = abs((times.from_timestamp(stamp, field) - now).total_seconds())
        if offset > skew:
            raise errors.InvalidArgument(
                f"{field} is {offset:.0f} s from the gateway's clock (allowed: {skew} s);"
                " check your system clock and sign again",
                reason="CLOCK_SKEW", field=field, gateway_time=times.to_text(now),
                allowed_seconds=skew,
            )

    def check_statement(self, statement: Any, now: datetime) -> None:
        """The fields of an AccessRequestStatement (the dataset is checked against the catalog),
        its create_time last: a retry refused only for that is answered with the first request."""
        field = "signed_statement"
        DatasetName.parse(statement.dataset, f"{field}.dataset")
        _check_field_names(list(statement.fields), f"{field}.fields")
        if statement.purpose not in exchange_pb2.Purpose.values() or not statement.purpose:
            raise errors.InvalidArgument(
                f"{field}.purpose must be one of the Purpose codes (PURPOSE_PUBLIC_SERVICE ...)",
                field=f"{field}.purpose",
            )
        check_text(statement.purpose_text, f"{field}.purpose_text", 1000, required=True)
        check_text(statement.legal_basis, f"{field}.legal_basis", 500, required=True)
        if times.from_duration(statement.duration, f"{field}.duration") <= timedelta(0):
            raise errors.InvalidArgument(f"{field}.duration must be positive",
                                         field=f"{field}.duration")
        check_text(statement.request_id, f"{field}.request_id", MAX_REQUEST_ID, required=True)
        if statement.version < 0:
            raise errors.InvalidArgument(
                f"{field}.version must be a version number, or 0 for the latest version",
                field=f"{field}.version")
        _check_nonce(statement.nonce, f"{field}.nonce")
        self.check_fresh(statement.create_time, f"{field}.create_time", now)

    def evaluate(
        self, call: Call, requester: str, statement: Any, now: datetime, conn: Any = None,
    ) -> tuple[Dataset | None, Dataset | Version | None, policy.PolicyDecision]:
        """The dataset asked for (None if it does not exist), the terms asked for (`seen_terms`)
        and what the sharing rules decide (read through `conn`, or from the gateway's caches when
        it is None).

        A dataset the requester may not see (CONFIDENTIAL, of any sharing type, withdrawn or not)
        and a name that does not exist under a registered agency get the same answer, on the real
        call and the dry run alike: a request the owner decides, with the same reason
        (`policy.decide_unseen`), its fields checked against the schema only when the owner
        approves. So an agency that learned a CONFIDENTIAL dataset's exact name out of band may ask
        for it, and no answer tells whether a hidden dataset exists, how it is shared or which
        fields it holds. A version the statement names that does not exist or that the requester
        may not see is answered alike. Only the directory is public: a name under an agency that
        is not registered is NOT_FOUND.
        """
        owner = DatasetName.parse(statement.dataset).owner
        dataset = (self._datasets.dataset(statement.dataset) if conn is None
                   else catalog_sql.get_dataset(conn, statement.dataset))
        if owner.agency == requester:
            raise _own_dataset(statement.dataset, dataset)
        config = self._config
        reader = conn or self._db.reader()
        terms = self.seen_terms(call, reader, dataset, statement.version)
        if terms is None:
            if self._agencies.by_id(owner.agency) is None:
                raise errors.NotFound(
                    f"{owner} is not a registered agency, so {statement.dataset}"
                    " does not exist: check the name in the directory (ListAgencies)",
                    reason="AGENCY_NOT_FOUND", agency=owner, dataset=statement.dataset,
                )
            return dataset, None, policy.decide_unseen(statement.dataset, str(owner),
                                                       statement, config, now)
        if statement.fields:
            check_fields(list(statement.fields),
                         dataset_fields(reader, statement.dataset, statement.version),
                         "signed_statement.fields")
        return dataset, terms, policy.decide(dataset, statement, config, now, terms)

    def seen_terms(self, call: Call, conn: Any, dataset: Dataset | None,
                   version: int) -> Dataset | Version | None:
        """The terms a request asks for, if its requester may see them: `dataset` itself (for the
        latest version, `version` 0) or the version it names. None, so that the owner
        decides and the answer tells nothing, for a dataset or version that does not exist or is
        hidden, and for any version of a dataset whose latest version the requester may not see:
        whether that latest version is still exchanged (not withdrawn, not NOT_SHARED) would show
        in a grant given at once."""
        if dataset is None or not self._catalog.can_see(call, dataset):
            return None
        if not version:
            return dataset
        name = str(DatasetName.parse(dataset.name).version(version))
        row = catalog_sql.get_version(conn, name)
        if row is None or (row.classification == "CONFIDENTIAL"
                           and not self._catalog.sees_confidential(call, dataset)):
            return None
        return row

    def create_request(
        self, call: Call, parent: str, envelope: envelope_pb2.Envelope,
        validate_only: bool,
    ) -> Created:
        """Check, decide and (unless validate_only) record an access request.

        A dry run takes the same path as the real call up to the write: same checks, same
        idempotent-retry answer, same decision, same refusals (audited like every refusal), and
        for a dataset the caller may not see, the same would-be PENDING request (see `evaluate`).
        """
        requester, statement = self._open_request(call, parent, envelope)
        now = call.time
        try:
            self.check_statement(statement, now)
        except errors.InvalidArgument as refused:
            # A retry may come after the skew window: it is answered with the first request.
            retried = (self._earlier_request(requester, statement, now)
                       if refused.reason == "CLOCK_SKEW" else None)
            if retried is None:
                raise
            return retried
        envelope_bytes = envelope.SerializeToString()
        digest = envelopes.envelope_id(envelope)
        if validate_only:  # a real call finds a retry inside its change, off this hot path
            earlier = self._earlier_request(requester, statement, now)
            if earlier is not None:
                return earlier
            dry = self._plan(call, requester, statement, envelope_bytes, digest, now,
                        dry_run=True).created
            self._check_none_pending(self._db.reader(), call, dry.request)
            return dry
        # Decide and sign on this thread; the committer re-checks that the dataset did not change
        # meanwhile (a cheap read) instead of deciding and signing while every writer waits.
        try:
            planned = self._plan(call, requester, statement, envelope_bytes, digest, now)
        except errors.GatewayError:
            planned = None  # decided again inside the change, after the idempotent-retry check

        def change(tx: Tx) -> tuple[Created, list]:
            # Again inside the change: of concurrent identical retries, exactly one is written.
            existing = sql.find_by_request_id(tx.conn, requester, statement.request_id,
                                              times.to_text(tx.now))
            if existing is not None:
                return _retry(tx.conn, existing, statement, tx.now), []
            plan = planned
            if plan is None or catalog_sql.sharing_terms(tx.conn, statement.dataset) != (
                    plan.dataset and plan.dataset.terms):
                plan = self._plan(call, requester, statement, envelope_bytes, digest,
                             tx.now, tx.conn)
            self._check_none_pending(tx.conn, call, plan.created.request)  # one at a time
            sql.insert_access_request(tx.conn, plan.created.request)
            if plan.created.grant is not None:
                sql.insert_grant(tx.conn, plan.created.grant)
            row = plan.created.request
            _notify(tx, row.owner, "ACCESS_REQUEST_CREATED", row.name, row, call,
                    f"{parent} asks for {row.dataset}: {row.state_reason}")
            return plan.created, plan.events

        return self._work.commit(change, call.refusal).value

    def _open_request(self, call: Call, parent: str,
                      envelope: envelope_pb2.Envelope) -> tuple[str, Any]:
        """The requester's agency id and its signed statement: `parent` is the caller, which
        signed the statement in its own name."""
        requester = require_parent(call, parent)
        # Named before the signature is checked, so a forged statement's refusal names its target.
        claimed = envelopes.claimed(envelope, envelopes.ACCESS_REQUEST)
        if claimed is not None:
            dataset = DatasetName.match(claimed.dataset)
            call.resources = [parent, claimed.dataset, str(dataset.owner) if dataset else ""]
        statement = self._statements.open_signed(call, envelope, envelopes.ACCESS_REQUEST,
                                                 "signed_statement")
        check_requester(statement, requester)
        return requester, statement

    def open_carried(self, call: Call, parent: str, envelope: envelope_pb2.Envelope) -> None:
        """Check an access request this gateway carries to the member holding its dataset, as
        far as the requester's gateway can: the parent and the signer are the caller, its
        signature verifies with its registered key, and its request_id was not used for
        another statement (a retry of one carried before goes on: its member answers it). The
        owner's gateway checks the rest and decides."""
        requester, statement = self._open_request(call, parent, envelope)
        reader = self._db.reader()
        existing = sql.find_by_request_id(reader, requester, statement.request_id,
                                          times.to_text(call.time))
        if existing is not None:
            _retry(reader, existing, statement, call.time)  # REQUEST_ID_REUSED if another

    def _plan(
        self, call: Call, requester: str, statement: Any,
        envelope_bytes: bytes, digest: str, now: datetime, conn: Any = None, *,
        dry_run: bool = False,
    ) -> _Planned:
        """Evaluate the request against the sharing rules and build its rows (and signed grant);
        a dry run builds the request as it would be created, without a name or a grant."""
        dataset, terms, decision = self.evaluate(call, requester, statement, now, conn)
        enforce(decision, statement.dataset)
        name = "" if dry_run else str(AgencyName(requester).access_request(new_id()))
        row = _request_row(name, requester, statement, envelope_bytes, digest, decision, now)
        if dry_run:
            return _Planned(dataset, Created(row, None), [])
        grant = None
        audit = [call.event("exchange.request.create", envelope_ids=(digest,),
                            resources=_resources(name, row), reason=decision.reason)]
        if decision.outcome == policy.GRANT_NOW:
            grant, grant_id = self._grant_row(row, list(statement.fields), decision.duration,
                                         exchange_pb2.GRANT_BASIS_UNCONDITIONAL_SHARING, now, terms)
            row = replace(row, grant_name=grant.name, decide_time=row.create_time)
            audit.append(call.event("exchange.grant.create", envelope_ids=(grant_id,),
                                    resources=_resources(grant.name, row)))
        return _Planned(dataset, Created(row, grant), audit)

    def _check_none_pending(self, conn: Any, call: Call,
                            request: AccessRequest) -> None:
        """Refuse a `request` that would wait for the owner while its requester's earlier request
        for the dataset still waits (overdue or not: the owner can still decide it), or while its
        requester already has [exchange] max_pending_requests waiting for that owner, so an owner
        is not flooded with copies or guesses (counted alike whether the datasets exist or not).
        Granted at once (a renewal, say), it is not checked: that path makes no read for this."""
        if request.state != PENDING:
            return
        waiting = sql.pending_request(conn, request.requester, request.dataset)
        if waiting is not None:
            name, deadline = waiting
            call.resources = [*call.resources, name]
            raise errors.FailedPrecondition(
                f"your access request {name} for {request.dataset} is still PENDING (the owner"
                f" decides by {deadline}): wait for that decision, or withdraw that request"
                " (WithdrawAccessRequest) and ask again",
                reason="REQUEST_ALREADY_PENDING", access_request=name, dataset=request.dataset,
            )
        most = self._config.max_pending_requests
        if sql.count_pending(conn, request.requester, request.owner) >= most:
            owner = AgencyName(request.owner)
            raise errors.ResourceExhausted(
                f"you have {most} PENDING access requests to {owner}, the most one agency may have"
                " waiting for one owner: wait for its decisions, or withdraw some"
                " (WithdrawAccessRequest) and ask again",
                reason="TOO_MANY_PENDING_REQUESTS", agency=owner, limit=most,
            )

    def _earlier_request(
        self, requester: str, statement: Any, now: datetime
    ) -> Created | None:
        """What a retry of an earlier statement with this request_id answers, if there was one."""
        reader = self._db.reader()
        existing = sql.find_by_request_id(reader, requester, statement.request_id,
                                          times.to_text(now))
        return None if existing is None else _retry(reader, existing, statement, now)

    def _grant_row(
        self, request: AccessRequest, fields: list[str], duration: timedelta,
        basis: int, now: datetime, given: Dataset | Version,
    ) -> tuple[Grant, str]:
        """A new grant answering `request`, sealed by the gateway, and its envelope id. It is given
        under the terms `given` (the version the request names, or the dataset for its latest
        version, read as the grant is decided), and opens no version published under stricter
        ones."""
        name = str(AgencyName(request.requester).grant(new_id()))
        expire = now + duration
        max_classification, max_sharing_type = given.classification, policy.sharing_type(given)
        statement = exchange_pb2.GrantStatement(
            grant=name, grantee=str(AgencyName(request.requester)),
            owner=str(AgencyName(request.owner)), dataset=request.dataset, fields=fields,
            access_request=request.name, basis=basis, create_time=times.to_timestamp(now),
            expire_time=times.to_timestamp(expire),
            max_classification=enum_value(catalog_pb2.Classification, max_classification),
            max_sharing_type=enum_value(catalog_pb2.SharingType, max_sharing_type),
        )
        envelope = envelopes.seal(self._signing_key, envelopes.GRANT, statement)
        return Grant(
            name=name, grantee=request.requester, owner=request.owner,
            dataset=request.dataset, access_request=request.name,
            fields=json.dumps(fields), state="ACTIVE",
            signed_statement=envelope.SerializeToString(), create_time=times.to_text(now),
            expire_time=times.to_text(expire), revoke_time=None, revoke_reason="",
            max_classification=max_classification, max_sharing_type=max_sharing_type,
        ), envelopes.envelope_id(envelope)

    def decide_request(
        self, call: Call, name: str, envelope: envelope_pb2.Envelope, approve: bool,
    ) -> Created:
        """Record the owner's signed decision on a PENDING request (and its grant on approval)."""
        AccessRequestName.parse(name)
        try:
            decision = self._statements.open_signed(call, envelope, envelopes.DECISION,
                                              "signed_decision")
            self._check_decision(decision, name, approve, call.time)
        except errors.GatewayError:
            _name_parties(call, name, sql.get_access_request(self._db.reader(), name,
                                                             times.to_text(call.time)))
            raise
        digest = envelopes.envelope_id(envelope)
        owner = call.caller.identity.id
        action = "exchange.request.approve" if approve else "exchange.request.deny"

        def change(tx: Tx) -> tuple[Created, list]:
            now = times.to_text(tx.now)
            row = sql.get_access_request(tx.conn, name, now)
            if row is None:
                raise errors.NotFound(f"access request {name} does not exist", access_request=name)
            _name_parties(call, name, row)
            if row.owner != owner:
                raise errors.PermissionDenied(
                    f"only the owner of the requested dataset may decide on {name}",
                    reason="NOT_OWNER", access_request=name,
                )
            _check_pending(row)
            grant = None
            audit = [call.event(action, resources=tuple(call.resources), envelope_ids=(digest,),
                                reason=decision.reason)]
            if approve:
                grant, grant_id = self._approved_grant(tx, row, decision)
                sql.insert_grant(tx.conn, grant)
                audit.append(call.event("exchange.grant.create", envelope_ids=(grant_id,),
                                        resources=_resources(grant.name, row)))
            reason = decision.reason or ("approved by the owner" if approve else "")
            sql.decide_access_request(
                tx.conn, name, state=APPROVED if approve else DENIED, reason=reason,
                signed_decision=envelope.SerializeToString(),
                grant_name=grant.name if grant else None, when=now,
            )
            kind = "ACCESS_REQUEST_APPROVED" if approve else "ACCESS_REQUEST_DENIED"
            _notify(tx, row.requester, kind, name, row, call,
                    f"{AgencyName(owner)} {'approved' if approve else 'denied'} {name}: {reason}")
            return Created(sql.get_access_request(tx.conn, name, now), grant), audit

        return self._work.commit(change, call.refusal).value

    def _approved_grant(
        self, tx: Tx, row: AccessRequest, decision: Any
    ) -> tuple[Grant, str]:
        """The grant an approval creates, if the requester and the dataset, as they are now, still
        allow one."""
        _check_requester_active(tx.conn, row.requester)
        statement = decode_statement(row)
        dataset = catalog_sql.get_dataset(tx.conn, row.dataset)
        if dataset is None:  # asked for by a name its owner never published
            raise errors.NotFound(
                f"{row.dataset} does not exist: deny the request, or publish the dataset first",
                reason="DATASET_NOT_FOUND", dataset=row.dataset,
            )
        terms = _asked_version(tx.conn, dataset, statement.version)
        ruling = policy.decide_approval(dataset, terms, statement.duration.ToTimedelta(),
                                        self._config)
        enforce(ruling, row.dataset)
        return self._grant_row(row, _approved_fields(tx, row, statement, decision),
                          _approved_duration(ruling.duration, decision),
                          exchange_pb2.GRANT_BASIS_OWNER_APPROVAL, tx.now, terms)

    def _check_decision(self, decision: Any, name: str, approve: bool, now: datetime) -> None:
        field = "signed_decision"
        if decision.access_request != name:
            raise errors.InvalidArgument(f"{field}.access_request must be {name}",
                                         field=f"{field}.access_request")
        wanted = exchange_pb2.DECISION_OUTCOME_APPROVE if approve else \
            exchange_pb2.DECISION_OUTCOME_DENY
        if decision.outcome != wanted:
            raise errors.InvalidArgument(
                f"{field}.outcome must be {exchange_pb2.DecisionOutcome.Name(wanted)} for this"
                " call",
                reason="OUTCOME_MISMATCH", field=f"{field}.outcome",
            )
        if len(decision.reason) > MAX_DECISION_REASON:
            raise errors.InvalidArgument(
                f"{field}.reason is {len(decision.reason)} characters, too long: shorten it to at"
                f" most {MAX_DECISION_REASON}",
                reason="REASON_TOO_LONG", field=f"{field}.reason",
            )
        if not approve and not decision.reason.strip():
            raise errors.InvalidArgument(
                f"a denial needs {field}.reason (1 to {MAX_DECISION_REASON} characters) saying why",
                reason="REASON_REQUIRED", field=f"{field}.reason",
            )
        _check_nonce(decision.nonce, f"{field}.nonce")
        self.check_fresh(decision.create_time, f"{field}.create_time", now)

    def withdraw_request(self, call: Call, name: str, reason: str) -> AccessRequest:
        """Close the caller's own PENDING request without a decision and tell the owner, so that
        the requester may ask again (it may have one PENDING request per dataset). Only the
        requester named in `name` may: refused before any read, so no one learns whether another
        agency's request exists."""
        requester = AccessRequestName.parse(name).parent
        call.resources = [name]
        if requester.agency != call.caller.identity.id:
            raise errors.PermissionDenied(
                f"only {requester}, which made {name}, may withdraw it (the"
                " dataset's owner denies a request instead)",
                reason="NOT_REQUESTER", access_request=name,
            )
        check_reason(reason)

        def change(tx: Tx) -> tuple[AccessRequest, list]:
            now = times.to_text(tx.now)
            row = sql.get_access_request(tx.conn, name, now)
            if row is None:
                raise errors.NotFound(f"access request {name} does not exist", access_request=name)
            call.resources = list(_resources(name, row))
            _check_pending(row)
            sql.decide_access_request(tx.conn, name, state=WITHDRAWN,
                                      reason=f"withdrawn by its requester: {reason}",
                                      signed_decision=None, grant_name=None, when=now)
            _notify(tx, row.owner, "ACCESS_REQUEST_WITHDRAWN_BY_REQUESTER", name, row, call,
                    f"{AgencyName(row.requester)} withdrew {name} for {row.dataset}:"
                    f" {reason}")
            event = call.event(resources=tuple(call.resources), reason=reason)
            return sql.get_access_request(tx.conn, name, now), [event]

        return self._work.commit(change, call.refusal).value

    def get_request(self, call: Call, name: str) -> AccessRequest:
        """One access request, for its requester or its owner."""
        requester = AccessRequestName.parse(name).parent
        agency = call.caller.identity.id
        row = sql.get_access_request(self._db.reader(), name, times.to_text(call.time))
        if row is None and requester.agency == agency:
            raise errors.NotFound(f"access request {name} does not exist", access_request=name)
        if row is None or agency not in (row.requester, row.owner):
            raise errors.PermissionDenied(
                f"only the requester and the dataset's owner may read {name}",
                reason="NOT_A_PARTY", access_request=name,
            )
        return row

    def list_requests(self, call: Call,
                      request: exchange_pb2.ListAccessRequestsRequest) -> Page[AccessRequest]:
        """A page of the access requests to (incoming) or from the calling agency, newest first,
        their states as of the call's time."""
        return self._page(call, request, sql.list_access_requests,
                          exchange_pb2.AccessRequestState, overdue_only=request.overdue_only)

    def list_grants(self, call: Call, request: exchange_pb2.ListGrantsRequest) -> Page[Grant]:
        """A page of the grants given by (incoming) or held by the calling agency, newest first,
        their states as of the call's time."""
        return self._page(call, request, sql.list_grants, exchange_pb2.GrantState)

    def _page(self, call: Call, request: Any, query: Callable[..., list[Any]],
              states: Any, **filters: Any) -> Page[Any]:
        """A page of `query` (storage's listing of requests or grants) for the agency `request`
        names as its parent: the side its direction asks for, the state (of enum `states`) and
        dataset it filters by, and `filters`; checked in that order, the parent first."""
        agency = require_parent(call, request.parent)
        incoming = direction_incoming(request.direction)
        size = paging.page_size(request.page_size)
        found = query(
            self._db.reader(), agency=agency, incoming=incoming,
            state=optional_enum(states, request.state, "state"), now=times.to_text(call.time),
            dataset=dataset_filter(request.dataset),
            before=self._page_tokens.decode(request.page_token, request), limit=size + 1,
            **filters,
        )
        return paging.page(self._page_tokens, self._limits, request, found, size, _seq)

    def revoke_grant(self, call: Call, name: str, reason: str) -> Grant:
        """Revoke a grant (its owner or an administrator); fetches under it stop."""
        GrantName.parse(name)
        check_reason(reason)

        def change(tx: Tx) -> tuple[Grant, list]:
            now = times.to_text(tx.now)
            grant = sql.get_grant(tx.conn, name, now)
            if grant is None:
                raise errors.NotFound(f"grant {name} does not exist", grant=name)
            call.resources = list(_resources(name, grant))
            if call.caller.kind != ADMIN and grant.owner != call.caller.identity.id:
                raise errors.PermissionDenied(
                    f"only the owner of {grant.dataset} or an administrator may revoke {name}",
                    reason="NOT_OWNER", grant=name,
                )
            if grant.member:
                raise errors.FailedPrecondition(
                    f"{name} was given at member {grant.member}, whose owner agency or"
                    " administrators revoke it there; this gateway keeps a copy for its grantee",
                    reason="GRANT_HELD_BY_MEMBER", grant=name, network_member=grant.member)
            if grant.effective_state != "ACTIVE":
                raise errors.FailedPrecondition(f"{name} is {grant.effective_state}, not ACTIVE",
                                                reason="GRANT_NOT_ACTIVE",
                                                state=grant.effective_state)
            sql.revoke_grant(tx.conn, name, reason, now)
            _notify(tx, grant.grantee, "GRANT_REVOKED", name, grant, call,
                    f"{name} on {grant.dataset} was revoked: {reason}")
            event = call.event("exchange.grant.revoke", resources=tuple(call.resources),
                               reason=reason)
            return sql.get_grant(tx.conn, name, now), [event]

        return self._work.commit(change, call.refusal).value


def _check_nonce(nonce: bytes, field: str) -> None:
    if len(nonce) < MIN_NONCE_BYTES:
        raise errors.InvalidArgument(f"{field} must be at least {MIN_NONCE_BYTES} random bytes",
                                     field=field)


def check_requester(statement: Any, requester: str) -> None:
    """An agency asks only in its own name (checked before anything else in the statement)."""
    if statement.requester != str(AgencyName(requester)):
        raise errors.PermissionDenied(
            f"signed_statement.requester must be the calling agency {AgencyName(requester)}:"
            " an agency asks only in its own name",
            reason="REQUESTER_NOT_CALLER", field="signed_statement.requester",
        )


def _check_field_names(names: list[str], field: str) -> None:
    """Field names as a schema may hold them (at most catalog.MAX_SCHEMA_FIELDS, each of 1 to
    catalog.MAX_FIELD_NAME characters, none repeated): checked whatever the dataset, since a
    request for one the requester may not see is recorded without checking its schema."""
    if len(names) > catalog.MAX_SCHEMA_FIELDS:
        raise errors.InvalidArgument(f"{field} may name at most {catalog.MAX_SCHEMA_FIELDS}"
                                     " fields", field=field)
    for index, name in enumerate(names):
        check_text(name, f"{field}[{index}]", catalog.MAX_FIELD_NAME, required=True)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise errors.InvalidArgument(f"{field} names {', '.join(repeated)} more than once",
                                     field=field)


def dataset_fields(conn: Any, dataset: str, version: int = 0) -> set[str]:
    """The schema field names of the signed manifest of the dataset's version `version` (0: its
    latest)."""
    row = (catalog_sql.get_version(conn, str(DatasetName.parse(dataset).version(version)))
           if version else catalog_sql.latest_version(conn, dataset))
    if row is None:
        return set()
    envelope = envelope_pb2.Envelope.FromString(row.signed_manifest)
    manifest = catalog_pb2.Manifest.FromString(envelope.payload)
    return {field.name for field in manifest.schema}


def check_fields(asked: list[str], allowed: set[str], field: str) -> None:
    unknown = sorted(set(asked) - allowed)
    if unknown:
        raise errors.InvalidArgument(
            f"{field} names fields that are not available: {', '.join(unknown)}",
            reason="FIELD_UNKNOWN", field=field, fields=",".join(unknown),
        )


def _own_dataset(name: str, dataset: Dataset | None) -> errors.GatewayError:
    """The refusal of a request for one of the requester's own dataset names."""
    if dataset is None:
        return errors.NotFound(f"{name} does not exist", reason="DATASET_NOT_FOUND",
                               dataset=name)
    return errors.FailedPrecondition(
        f"{name} is your own dataset: no access request is needed; owners read their own"
        " datasets with GetDataset and ListDatasetVersions (show, versions)",
        reason="OWN_DATASET", dataset=name,
    )


def enforce(decision: policy.PolicyDecision, dataset: str) -> None:
    """Raise the refusal of a REFUSE decision."""
    if decision.outcome == policy.REFUSE:
        raise errors.FailedPrecondition(decision.reason, reason=decision.refusal, dataset=dataset)


# -- CreateAccessRequest -------------------------------------------------------------------------


@dataclass
class _Planned:
    """A decided access request, its grant signed, ready to be written."""

    dataset: Dataset | None
    """The dataset as decided on; None for a name that does not exist."""
    created: Created
    events: list


def request_content(statement: Any) -> Any:
    """What a statement asks, without the nonce and create_time renewed on every signing."""
    content = exchange_pb2.AccessRequestStatement()
    content.CopyFrom(statement)
    content.ClearField("nonce")
    content.ClearField("create_time")
    return content


def _retry(conn: Any, existing: AccessRequest, statement: Any, now: datetime) -> Created:
    """A retry asking the same (a fresh nonce and create_time aside) returns the first request;
    a different statement is refused."""
    if request_content(decode_statement(existing)) != request_content(statement):
        raise errors.AlreadyExists(
            f"request_id {existing.request_id} was already used for another statement"
            f" ({existing.name}); choose a new request_id for a new request",
            reason="REQUEST_ID_REUSED", access_request=existing.name,
        )
    grant = None
    if existing.grant_name:
        grant = sql.get_grant(conn, existing.grant_name, times.to_text(now))
    return Created(existing, grant)


def _request_row(
    name: str, requester: str, statement: Any, envelope_bytes: bytes, digest: str,
    decision: policy.PolicyDecision, now: datetime,
) -> AccessRequest:
    deadline = decision.decide_deadline
    return AccessRequest(
        name=name, requester=requester, owner=DatasetName.parse(statement.dataset).agency,
        dataset=statement.dataset, request_id=statement.request_id,
        statement_digest=digest, signed_statement=envelope_bytes,
        state=APPROVED if decision.outcome == policy.GRANT_NOW else PENDING,
        state_reason=decision.reason,
        decide_deadline=times.to_text(deadline) if deadline else None,
        signed_decision=None, grant_name=None, create_time=times.to_text(now),
        decide_time=None,
    )


def _resources(name: str, row: AccessRequest | Grant) -> tuple[str, ...]:
    """What an exchange event concerns: the resource, both agencies and the dataset."""
    return (name, str(AgencyName(row.requester if isinstance(row, AccessRequest) else row.grantee)),
            str(AgencyName(row.owner)), row.dataset)


def _notify(tx: Tx, recipient: str, kind: str, resource: str, row: AccessRequest | Grant,
            call: Call,
            summary: str) -> None:
    events_sql.insert_event(tx.conn, Event(
        recipient=recipient, type=kind, resource=resource, dataset=row.dataset,
        actor=call.caller.uri, summary=summary, create_time=times.to_text(tx.now)))


# -- Approve / Deny ------------------------------------------------------------------------------


def _name_parties(call: Call, name: str, row: AccessRequest | None) -> None:
    """Let a decision, refused or not, name the dataset and both agencies of request `row`, so
    that its owner finds a forged one under the dataset; only when the caller is a party to the
    request, so that no refusal tells a stranger guessing names whose dataset it is for."""
    if row is not None and call.caller.identity.id in (row.requester, row.owner):
        call.resources = list(_resources(name, row))


def _check_requester_active(conn: Any, requester: str) -> None:
    """FAILED_PRECONDITION REQUESTER_SUSPENDED unless agency id `requester` is active: in this
    gateway's directory, or for an agency homed at another member, in its replica (as its home
    gateway last said; one the member no longer lists gets no grant either)."""
    agency = (directory_sql.get_agency(conn, requester)
              or replica_sql.replica_agency(conn, requester))
    if agency is not None and agency.state == "ACTIVE":
        return
    state = (f"{agency.state} ({agency.suspend_reason})" if agency is not None
             else "no longer listed by its home gateway")
    raise errors.FailedPrecondition(
        f"{AgencyName(requester)} is {state}: no grant is given to it; deny the request or"
        " wait until an administrator reinstates it",
        reason="REQUESTER_SUSPENDED", agency=AgencyName(requester),
    )


def _check_pending(row: AccessRequest) -> None:
    state = row.effective_state
    if state == PENDING:
        return
    # Its requester or the dataset's withdrawal closed it: the state_reason says which.
    why = (f"it was closed without a decision ({row.state_reason})" if state == WITHDRAWN
           else "it was decided already")
    raise errors.FailedPrecondition(f"{row.name} is {state}, not PENDING: {why}",
                                    reason="REQUEST_NOT_PENDING", state=state)


def _asked_version(conn: Any, dataset: Dataset, version: int) -> Dataset | Version:
    """The version an approved request names (`dataset` for the latest), as it
    is now; NOT_FOUND for a version its owner never published."""
    if not version:
        return dataset
    name = str(DatasetName.parse(dataset.name).version(version))
    row = catalog_sql.get_version(conn, name)
    if row is None:  # asked for by a number its owner never published
        raise errors.NotFound(
            f"{name} does not exist: deny the request, or publish that version first",
            reason="VERSION_NOT_FOUND", dataset=dataset.name, version=name,
        )
    return row


def _approved_duration(allowed: timedelta, decision: Any) -> timedelta:
    """The request's duration as the rules cap it (`allowed`), or the owner's shorter one."""
    if not decision.HasField("duration"):
        return allowed
    narrowed = times.from_duration(decision.duration, "signed_decision.duration")
    if not timedelta(0) < narrowed <= allowed:
        raise errors.InvalidArgument(
            f"signed_decision.duration must be positive and at most {allowed.days} days",
            field="signed_decision.duration",
        )
    return narrowed


def _approved_fields(tx: Tx, row: AccessRequest, statement: Any, decision: Any) -> list[str]:
    """The fields the grant covers: the requested ones (none: every field), or the owner's
    subset of them; never more. They are checked against the dataset's schema here, where the
    owner decides: a request for a dataset its requester may not see was recorded unchecked."""
    field = "signed_decision.fields"
    asked, chosen = list(statement.fields), list(decision.fields)
    wider = sorted(set(chosen) - set(asked)) if asked else []
    if wider:
        raise errors.InvalidArgument(
            f"{field} may only narrow the requested fields ({', '.join(asked)}):"
            f" {', '.join(wider)} were not asked for",
            reason="FIELDS_NOT_REQUESTED", field=field, fields=",".join(wider),
        )
    granted = chosen or asked
    unknown = sorted(set(granted) - dataset_fields(tx.conn, row.dataset, statement.version))
    if unknown:
        whose = field if chosen else "the request"
        raise errors.InvalidArgument(
            f"{whose} names fields that {row.dataset} does not have: {', '.join(unknown)};"
            f" approve with {field} naming fields of its schema, or deny the request",
            reason="FIELD_UNKNOWN", field=field, fields=",".join(unknown),
        )
    return granted


def decode_statement(row: AccessRequest) -> Any:
    envelope = envelope_pb2.Envelope.FromString(row.signed_statement)
    return exchange_pb2.AccessRequestStatement.FromString(envelope.payload)


# -- reading requests ----------------------------------------------------------------------------


def _seq(row: AccessRequest | Grant) -> int:
    return row.seq


def dataset_filter(dataset: str) -> str:
    """A list's dataset filter: empty (every dataset) or a dataset name. A malformed one (a bare
    id, say) would match nothing and answer with an empty list as if there were none."""
    if dataset:
        DatasetName.parse(dataset, "dataset")
    return dataset


def direction_incoming(direction: int) -> bool:
    if direction not in (exchange_pb2.DIRECTION_OUTGOING, exchange_pb2.DIRECTION_INCOMING):
        raise errors.InvalidArgument("direction must be DIRECTION_OUTGOING or DIRECTION_INCOMING",
                                     field="direction")
    return direction == exchange_pb2.DIRECTION_INCOMING
