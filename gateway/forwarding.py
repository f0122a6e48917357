"""Access requests across the network, as the requester's gateway keeps them.

An agency asks for a dataset of an agency homed at another member through its own gateway,
which carries the request there (gateway/carrier.py, on the agency's behalf) and keeps here
what passed through it: the member's answer as a copy of the request (and of the grant, which
that member signed) in its own tables, `member` naming the member, and an audit event with the
statement's digest and the answer. So the requester's listings merge its local and carried
requests and grants in one order with one page token, as ListDatasets merges replicated
datasets, and show the last answer when the member is down.

A copy changes only as its member says: in the answer to a call carried there (Get, Withdraw),
or when the requester's gateway asks about the requests still PENDING and the grants still in
force (the carrier's rounds). A change learned so is audited (the gateway as actor) and given
to the requester as the event a local decision gives it (WatchEvents). What a member answers
is checked before it is kept (`_answer`, `_grant_row`, `_check_names`); anything else is
DATA_LOSS MEMBER_ANSWER_INVALID and nothing of it is kept:

1. the request is the requester's, named under it, of the very statement it signed (for a
   retry signed anew, the earlier statement it signed asking the same, which the member
   answers with), every field it signed read from that statement (the unsigned copy must
   equal it), its times within the Timestamp range, for a dataset of an agency homed at that
   very member;
2. a decision it carries is the one the dataset's owner signed for that request (its key as
   replicated), saying what the request's state says; a denial carries one;
3. a grant verifies with the member's signing certificate of the network configuration (or one
   it had before, for a grant signed while that was current), says what the copy says, and is
   the grant of that request: named under the requester, of the requester, the owner and the
   dataset the request names;
4. a copy never takes the place of a row it is not: a request or grant name this gateway holds
   must be a copy of that member's, of that request (a name of a local request or grant, or of
   another member's copy, is refused), so no member can bring back a grant that was revoked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from certs import member_signing
from certs.identity import Identity
from gateway.context import Call
from gateway.directory import DirectoryCache
from gateway.exchange import APPROVED, PENDING, WITHDRAWN, request_content
from gateway.federation import NetworkMembership
from gateway.identity import AGENCY, PEER
from gateway.models import AccessRequest, Agency, Event, Grant
from gateway.statements import StatementOpener
from gateway.storage import Database
from gateway.storage import events as events_sql
from gateway.storage import exchange as sql
from gateway.storage import replica as replica_sql
from gateway.unit_of_work import Tx, UnitOfWork
from gateway.v1 import catalog_pb2, envelope_pb2, exchange_pb2, network_pb2
from govshare import envelopes, errors, signing, times
from govshare.enums import enum_name
from govshare.names import AccessRequestName, AgencyName, DatasetName, GrantName, VersionName
from govshare.transparency import record

FORWARD = "exchange.request.forward"
"""The audit action of a request carried to the member holding its dataset."""
LEARN_REQUEST = "exchange.request.learn"
"""The audit action of a decision (or closure) of a carried request, learned from its member."""
LEARN_GRANT = "exchange.grant.learn"
"""The audit action of a revocation of a carried grant, learned from its member."""
MEMBER_ANSWER_INVALID = "MEMBER_ANSWER_INVALID"
"""The reason of a member's answer this gateway does not take."""
MAX_MEMBER_TEXT = 1000
"""A reason a member gives (network text) is kept clipped to this many bytes."""

_DECIDED = {APPROVED: exchange_pb2.DECISION_OUTCOME_APPROVE,
            "DENIED": exchange_pb2.DECISION_OUTCOME_DENY}
"""The outcome the owner's signed decision of a request in each state says."""
_LEARNED_EVENTS = {APPROVED: "ACCESS_REQUEST_APPROVED", "DENIED": "ACCESS_REQUEST_DENIED",
                   WITHDRAWN: "ACCESS_REQUEST_WITHDRAWN"}
"""The WatchEvents type a requester gets for a carried request closed at its member."""


class Forwarding:
    """Which member holds what an agency of this gateway asks for, and the copies of the
    requests and grants carried there."""

    def __init__(self, db: Database, work: UnitOfWork, agencies: DirectoryCache,
                 statements: StatementOpener, network: NetworkMembership | None, actor: str,
                 clock: Callable[[], datetime]):
        self._db = db
        self._work = work
        self._agencies = agencies
        self._statements = statements
        self._network = network
        self._actor = actor
        """This gateway's identity URI: the actor of what it learns from its members."""
        self._clock = clock
        """Read as the carrier's rounds go: what is open, and when an answer was learned."""

    # -- where a call goes -------------------------------------------------------------------

    def member_for_dataset(self, call: Call, dataset: str) -> network_pb2.MemberGateway | None:
        """The member holding `dataset` (or a version of it, by name), when its owner is an
        agency homed there and the call is of one of this gateway's own agencies; None when
        this gateway answers (a call a peer carried here is never carried on)."""
        if self._network is None or call.via is not None:
            return None
        name = DatasetName.match(dataset) or getattr(VersionName.match(dataset), "dataset", None)
        if name is None or self._agencies.by_id(name.agency) is not None:
            return None
        held = replica_sql.replica_agency(self._db.reader(), name.agency)
        return self.member(held.network_member) if held is not None else None

    def member_for_request(self, call: Call, name: str) -> network_pb2.MemberGateway | None:
        """The member holding access request `name`, when it is a copy of one of the caller's
        own carried there; None when this gateway answers."""
        parsed = AccessRequestName.match(name)
        if (self._network is None or call.via is not None or parsed is None
                or parsed.agency != call.caller.identity.id):
            return None
        row = sql.get_access_request(self._db.reader(), name, times.to_text(call.time))
        return self.member(row.member) if row is not None and row.member else None

    def member(self, member_id: str) -> network_pb2.MemberGateway:
        """The member `member_id` of the configuration held: UNAVAILABLE when it is no longer
        one (what it holds cannot be reached)."""
        assert self._network is not None
        member = self._network.current.member(member_id)
        if member is None or member_id == self._network.own_id:
            raise errors.Unavailable(
                f"member {member_id} is not in network configuration version"
                f" {self._network.current.version}: what it holds cannot be reached until a"
                " configuration names it again", reason="MEMBER_UNAVAILABLE", member=member_id)
        return member

    # -- what passes through -----------------------------------------------------------------

    def forwarded(self, call: Call, member: str, envelope: envelope_pb2.Envelope,
                  answer: exchange_pb2.CreateAccessRequestResponse) -> None:
        """Keep the copy of a request carried to `member` and its answer, with the audit event
        of what passed through (a retry answered with a request already kept is learned like
        any other answer)."""
        envelope = self._first_signed(call, envelope, answer.access_request.signed_statement)
        request = self._answer(member, answer.access_request, call.caller.identity.id, envelope)
        grant = self._grant_row(member, request, answer.grant) if answer.HasField("grant") \
            else None
        self._check_names(member, request, grant)

        def change(tx: Tx) -> tuple[None, list[record.Event]]:
            if _copy(tx, request.name) is not None:
                return None, self._learn(tx, request, grant)
            sql.put_forwarded_request(tx.conn, request)
            if grant is not None:
                sql.put_forwarded_grant(tx.conn, grant)
            ids = (request.statement_digest, *_envelope_ids(grant))
            return None, [call.event(FORWARD, resources=_resources(request.name, request),
                                     envelope_ids=ids, reason=_answer(member, request))]

        self._work.commit(change, call.refusal)

    def learned(self, member: str, answer: exchange_pb2.AccessRequest,
                grant: exchange_pb2.Grant | None) -> bool:
        """Keep what `member` now answers of a carried request (and its grant, which an
        approved one needs); True when that closed it, audited and told to its requester."""
        kept = self._kept(answer.name, member)
        request = self._answer(member, answer, kept.requester,
                               envelope_pb2.Envelope.FromString(kept.signed_statement))
        row = self._grant_row(member, request, grant) if grant is not None else None
        self._check_names(member, request, row)
        if request.state == APPROVED and row is None and not self._holds_grant_of(
                member, request):
            raise _invalid(member, f"{request.name} is APPROVED without its grant")

        def change(tx: Tx) -> tuple[bool, list[record.Event]]:
            events = self._learn(tx, request, row)
            return bool(events), events

        return self._work.commit(change).value

    def withdrawn(self, call: Call, member: str, answer: exchange_pb2.AccessRequest,
                  reason: str) -> None:
        """Keep the copy of a carried request its requester withdrew at `member`, with the
        audit event of the withdrawal."""
        kept = self._kept(answer.name, member)
        request = self._answer(member, answer, call.caller.identity.id,
                               envelope_pb2.Envelope.FromString(kept.signed_statement))
        self._check_names(member, request, None)
        if request.state != WITHDRAWN:
            raise _invalid(member, f"it answered a withdrawal of {request.name} with a request"
                                   f" {request.state}")

        def change(tx: Tx) -> tuple[None, list[record.Event]]:
            sql.put_forwarded_request(tx.conn, request)
            return None, [call.event(resources=_resources(request.name, request),
                                     reason=f"{reason} (carried to member {member})")]

        self._work.commit(change, call.refusal)

    def grants_learned(self, member: str, grants: list[exchange_pb2.Grant]) -> int:
        """Keep what `member` now answers of the grants it gave to this gateway's agencies
        (those this gateway holds copies of); returns how many it revoked since, each audited
        and told to its grantee."""
        now = self._now()
        rows = []
        for grant in grants:
            held = sql.get_grant(self._db.reader(), grant.name, now)
            if held is None or held.member != member:
                continue  # not one carried here (nor one this gateway gave)
            request = self._kept(held.access_request, member)
            rows.append(self._grant_row(member, request, grant))

        def change(tx: Tx) -> tuple[int, list[record.Event]]:
            events = []
            for row in rows:
                events.extend(self._learn_grant(tx, row))
            return len(events), events

        return self._work.commit(change).value

    # -- what the carrier asks about ---------------------------------------------------------

    def pending(self, member: str) -> list[AccessRequest]:
        """The copies of requests `member` holds that were PENDING when it last answered."""
        return sql.forwarded_pending(self._db.reader(), member, self._now())

    def grantees(self, member: str) -> list[str]:
        """The agencies (ids) holding grants `member` gave that were in force when it last
        answered."""
        return sql.forwarded_grantees(self._db.reader(), member, self._now())

    def open_members(self, call: Call) -> list[str]:
        """The members holding the caller's requests still PENDING or grants still in force,
        as they last answered."""
        return sql.open_members(self._db.reader(), call.caller.identity.id,
                                times.to_text(call.time))

    def grant_held(self, member: str, name: str) -> bool:
        """Whether a copy of grant `name`, given by `member`, is kept."""
        held = sql.get_grant(self._db.reader(), name, self._now()) if name else None
        return held is not None and held.member == member

    def refused(self, member: str, error: errors.GatewayError, more: int = 0,
                call: Call | None = None) -> None:
        """Audit an answer of `member` this gateway did not take (the member as actor):
        evidence of a misbehaving member, as a refused replicated change is. In a carried
        call (`call`), as a refusal of that call the caller's agency sees; in a round, one
        event for the round's `more` other refusals too."""
        also = f" (and {more} more answers of this round)" if more else ""
        self._work.append([record.Event(
            Identity(PEER, member).uri, call.action if call else LEARN_REQUEST,
            resources=tuple(call.resources) if call else (),
            agencies=(call.caller.agency_name,) if call else (), outcome=record.REFUSED,
            reason=f"{error.reason}: {error.message}{also}", time=self._now())])

    def _now(self) -> str:
        return times.to_text(self._clock())

    # -- inside a change ---------------------------------------------------------------------

    def _learn(self, tx: Tx, request: AccessRequest,
               grant: Grant | None) -> list[record.Event]:
        """Update the copy of `request` (and keep `grant`); the audit events and the
        requester's notification when its member closed it since it last answered."""
        kept = _copy(tx, request.name)
        sql.put_forwarded_request(tx.conn, request)
        if grant is not None:
            sql.put_forwarded_grant(tx.conn, grant)
        if kept is None or kept.state != PENDING or request.state == PENDING:
            return []
        owner = AgencyName(request.owner)
        verb = {APPROVED: "approved", "DENIED": "denied"}.get(request.state, "closed")
        _notify(tx, request.requester, _LEARNED_EVENTS[request.state], request.name, request,
                f"{owner} {verb} {request.name}: {request.state_reason}")
        decision = envelopes.envelope_id(envelope_pb2.Envelope.FromString(
            request.signed_decision)) if request.signed_decision else ""
        ids = tuple(filter(None, (decision, *_envelope_ids(grant))))
        return [self._event(LEARN_REQUEST, _resources(request.name, request), ids,
                            _answer(request.member or "", request))]

    def _learn_grant(self, tx: Tx, grant: Grant) -> list[record.Event]:
        kept = sql.get_grant(tx.conn, grant.name, times.to_text(tx.now))
        sql.put_forwarded_grant(tx.conn, grant)
        if kept is None or kept.state == grant.state or grant.state != "REVOKED":
            return []
        _notify(tx, grant.grantee, "GRANT_REVOKED", grant.name, grant,
                f"{grant.name} on {grant.dataset} was revoked: {grant.revoke_reason}")
        return [self._event(LEARN_GRANT, _resources(grant.name, grant), _envelope_ids(grant),
                            f"member {grant.member}: REVOKED: {grant.revoke_reason}")]

    def _event(self, action: str, resources: tuple[str, ...], ids: tuple[str, ...],
               reason: str) -> record.Event:
        return record.Event(self._actor, action, resources=resources, envelope_ids=ids,
                            reason=reason, time=self._now())

    # -- checking a member's answers ---------------------------------------------------------

    def _answer(self, member: str, answer: exchange_pb2.AccessRequest, requester: str,
                envelope: envelope_pb2.Envelope) -> AccessRequest:
        """The copy of `member`'s answer about the request `requester` signed as `envelope`,
        once it is that request, for a dataset of an agency homed at `member`, carrying only
        the decision its owner signed (checks 1 and 2 of the module docstring)."""
        request = _request_row(answer, member)
        _check_carried(request, requester, envelope)
        owner = replica_sql.replica_agency(self._db.reader(), request.owner)
        if owner is None or owner.network_member != member:
            raise _invalid(member, f"{request.dataset} is not of an agency homed there")
        self._check_decision(member, request, owner)
        return request

    def _first_signed(self, call: Call, carried: envelope_pb2.Envelope,
                      answered: envelope_pb2.Envelope) -> envelope_pb2.Envelope:
        """The statement a request carried for `call` is of: `answered`, the one the member
        answers with, when the caller signed it asking what `carried` asks (a retry signed
        anew, after the answer to the first was lost on the way: the member answers with the
        first request); else `carried`, against which the answer is then checked."""
        if answered.SerializeToString() == carried.SerializeToString():
            return carried
        try:
            earlier = self._statements.open_signed(call, answered, envelopes.ACCESS_REQUEST,
                                                   "access_request.signed_statement")
        except errors.GatewayError:
            return carried
        now = envelopes.claimed(carried, envelopes.ACCESS_REQUEST)
        same = now is not None and request_content(earlier) == request_content(now)
        return answered if same else carried

    def _check_decision(self, member: str, request: AccessRequest, owner: Agency) -> None:
        """A decision passed on is the owner's, signed for this request, saying what its
        state says; a denial carries one (an approval at once, of an UNCONDITIONAL dataset,
        has none)."""
        if request.signed_decision is None:
            if request.state == "DENIED":
                raise _invalid(member, f"{request.name} is DENIED without its owner's decision")
            return
        try:
            decision = self._statements.open_passed_on(
                owner, envelope_pb2.Envelope.FromString(request.signed_decision),
                envelopes.DECISION, "signed_decision")
        except (errors.GatewayError, ValueError) as exc:
            raise _invalid(member, f"the decision on {request.name} is not its owner's:"
                                   f" {getattr(exc, 'message', exc)}") from None
        if (decision.access_request, decision.outcome) != (request.name,
                                                            _DECIDED.get(request.state)):
            raise _invalid(member, f"the decision its owner signed does not say {request.name}"
                                   f" is {request.state}")

    def _check_names(self, member: str, request: AccessRequest, grant: Grant | None) -> None:
        """Check 4 of the module docstring: the names of a request and grant `member`
        answered with are new here, or those of its own copies of that request."""
        reader, now = self._db.reader(), self._now()
        kept = sql.get_access_request(reader, request.name, now)
        if kept is not None and (kept.member, kept.statement_digest) != (
                member, request.statement_digest):
            raise _invalid(member, f"it answered with {request.name}, the name of a request it"
                                   " does not hold")
        if grant is None:
            return
        held = sql.get_grant(reader, grant.name, now)
        if held is not None and (held.member, held.access_request) != (member, request.name):
            raise _invalid(member, f"it answered with {grant.name}, the name of a grant it did"
                                   f" not give for {request.name}")

    def _holds_grant_of(self, member: str, request: AccessRequest) -> bool:
        """Whether the copy of `request`'s grant, given by `member`, is kept."""
        held = sql.get_grant(self._db.reader(), request.grant_name or "", self._now())
        return held is not None and (held.member, held.access_request) == (member, request.name)

    def _kept(self, name: str, member: str) -> AccessRequest:
        """The copy of request `name` carried to `member`, which an answer about it updates."""
        kept = sql.get_access_request(self._db.reader(), name, self._now())
        if kept is None or kept.member != member:
            raise _invalid(member, f"it answered about {name}, which was not carried there")
        return kept

    def _grant_row(self, member: str, request: AccessRequest,
                   grant: exchange_pb2.Grant) -> Grant:
        """The copy of `grant`, once it verifies with `member`'s signing certificate of the
        network configuration and its signed statement says what the grant says, for
        `request`."""
        statement = self._signed_grant(member, grant.signed_statement)
        times_given = (_time(statement.create_time, member),
                       _time(statement.expire_time, member))
        said = (statement.grant, statement.grantee, statement.owner, statement.dataset,
                statement.access_request, list(statement.fields))
        shown = (grant.name, grant.grantee, grant.owner, grant.dataset, grant.access_request,
                 list(grant.fields))
        requester = AgencyName(request.requester)
        wanted = (request.name, str(requester), str(AgencyName(request.owner)), request.dataset)
        named = GrantName.match(grant.name)
        if (said != shown or (said[4], said[1], said[2], said[3]) != wanted or named is None
                or named.agency != requester.agency
                or request.grant_name not in (None, grant.name)):
            raise _invalid(member, f"its grant {grant.name} does not say what its signed"
                                   f" statement says, or is not the grant of {request.name}")
        revoked = grant.state == exchange_pb2.GRANT_STATE_REVOKED
        return Grant(
            name=grant.name, grantee=request.requester, owner=request.owner,
            dataset=request.dataset, access_request=request.name,
            fields=json.dumps(list(statement.fields)),
            state="REVOKED" if revoked else "ACTIVE",
            signed_statement=grant.signed_statement.SerializeToString(),
            create_time=times_given[0] or "", expire_time=times_given[1] or "",
            revoke_time=_time(grant.revoke_time, member) if revoked else None,
            revoke_reason=errors.clip(grant.revoke_reason, MAX_MEMBER_TEXT),
            max_classification=enum_name(catalog_pb2.Classification,
                                         statement.max_classification),
            max_sharing_type=enum_name(catalog_pb2.SharingType, statement.max_sharing_type),
            member=member)

    def _signed_grant(self, member: str,
                      envelope: envelope_pb2.Envelope) -> exchange_pb2.GrantStatement:
        try:
            return member_signing.open_signed(self.member(member), envelope, envelopes.GRANT,
                                              exchange_pb2.GrantStatement, "create_time")
        except (signing.SignatureError, ValueError) as exc:
            raise _invalid(member, f"its grant is not signed with its signing certificate"
                                   f" ({exc})") from None


def _request_row(answer: exchange_pb2.AccessRequest, member: str) -> AccessRequest:
    """The copy of a request as `member` answered it, what the requester signed read from its
    signed statement (an EXPIRED one is APPROVED: its copy's grant expires here too)."""
    try:
        requester = AgencyName.parse(answer.requester, "access_request.requester").agency
        owner = AgencyName.parse(answer.owner, "access_request.owner").agency
        AccessRequestName.parse(answer.name, "access_request.name")
        state = enum_name(exchange_pb2.AccessRequestState, answer.state)
        signed = envelopes.decode(answer.signed_statement, envelopes.ACCESS_REQUEST,
                                  "access_request.signed_statement")
    except (errors.InvalidArgument, ValueError) as exc:
        raise _invalid(member, str(exc)) from None
    if answer.statement != signed or answer.dataset != signed.dataset:
        raise _invalid(member, f"its copy of the statement of {answer.name} is not the"
                               " statement signed")
    grant_name = answer.grant or None
    if grant_name is not None and GrantName.match(grant_name) is None:
        raise _invalid(member, f"{answer.name} names {grant_name!r}, which is no grant")
    return AccessRequest(
        name=answer.name, requester=requester, owner=owner, dataset=signed.dataset,
        request_id=signed.request_id,
        statement_digest=envelopes.envelope_id(answer.signed_statement),
        signed_statement=answer.signed_statement.SerializeToString(),
        state=APPROVED if state == "EXPIRED" else state,
        state_reason=errors.clip(answer.state_reason, MAX_MEMBER_TEXT),
        decide_deadline=_time(answer.decide_deadline, member),
        signed_decision=(answer.signed_decision.SerializeToString()
                         if answer.HasField("signed_decision") else None),
        grant_name=grant_name, create_time=_time(answer.create_time, member) or "",
        decide_time=_time(answer.decide_time, member), member=member)


def _check_carried(request: AccessRequest, requester: str,
                   envelope: envelope_pb2.Envelope) -> None:
    """A member's answer is about a request of `requester`, named under it, of the very
    statement it signed (`envelope`), for the dataset that statement names."""
    statement = exchange_pb2.AccessRequestStatement.FromString(envelope.payload)
    member = request.member or ""
    if (request.requester != requester
            or AccessRequestName.parse(request.name).agency != requester
            or request.statement_digest != envelopes.envelope_id(envelope)
            or request.dataset != statement.dataset
            or DatasetName.parse(statement.dataset).agency != request.owner):
        raise _invalid(member, f"its answer {request.name} is not the request of"
                               f" {AgencyName(requester)} its gateway carried there")


def _invalid(member: str, why: str) -> errors.DataLoss:
    return errors.DataLoss(
        f"member {member} answered what this gateway does not take: {why}; its operator"
        " should look into that member", reason=MEMBER_ANSWER_INVALID, member=member)


def _copy(tx: Tx, name: str) -> AccessRequest | None:
    return sql.get_access_request(tx.conn, name, times.to_text(tx.now))


def _time(stamp: Timestamp, member: str) -> str | None:
    """A time `member` sent, as stored (None when unset); one out of the Timestamp range is
    an answer not taken."""
    if not stamp.ByteSize():
        return None
    try:
        return times.to_text(times.from_timestamp(stamp))
    except errors.InvalidArgument as exc:
        raise _invalid(member, exc.message) from None


def _envelope_ids(grant: Grant | None) -> tuple[str, ...]:
    if grant is None:
        return ()
    return (envelopes.envelope_id(envelope_pb2.Envelope.FromString(grant.signed_statement)),)


def _resources(name: str, row: AccessRequest | Grant) -> tuple[str, ...]:
    requester = row.requester if isinstance(row, AccessRequest) else row.grantee
    return (name, str(AgencyName(requester)), str(AgencyName(row.owner)), row.dataset)


def _answer(member: str, request: AccessRequest) -> str:
    return f"member {member}: {request.state}: {request.state_reason}"


def _notify(tx: Tx, recipient: str, kind: str, resource: str, row: AccessRequest | Grant,
            summary: str) -> None:
    events_sql.insert_event(tx.conn, Event(
        recipient=recipient, type=kind, resource=resource, dataset=row.dataset,
        actor=Identity(AGENCY, row.owner).uri, summary=summary,
        create_time=times.to_text(tx.now)))

