"""The gateway carrying its agencies' exchanges to the members that hold what they ask for.

An agency connects to its own gateway only. When it asks for, reads or withdraws a request for
a dataset of an agency homed at another member, or fetches such a dataset, its gateway calls
that member's gateway as a peer, on the agency's behalf (metadata govshare-on-behalf-of,
gateway/rpc.py), over the member's pinned channel (gateway/peers.py), and passes the answer or
the stream on: the owner's gateway decides and delivers, this one keeps what passed through it
(gateway/forwarding.py, gateway/relaying.py). A member that does not
answer makes the call UNAVAILABLE MEMBER_UNAVAILABLE, naming it; a member's refusal is passed
on as it came, its message naming the member (errors.FromMember).

Decisions come back by asking, as replication pulls and for the same reason (no standing stream
between gateways holds a thread at either end): every [network] replicate_seconds one thread
asks each member about the carried requests still PENDING there and the grants still in force
(`poll`), and the forwarding records what changed. `poll` is also what tests call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from agencies.errors import from_rpc_error
from gateway import wire
from gateway.context import Call
from gateway.exchange import Exchange
from gateway.federation import NetworkMembership
from gateway.forwarding import MEMBER_ANSWER_INVALID, Forwarding
from gateway.identity import ON_BEHALF_KEY
from gateway.peers import PeerChannels
from gateway.periodic import Periodic
from gateway.relaying import Relay, Relaying
from gateway.replication import STALE_INTERVALS
from gateway.v1 import envelope_pb2, exchange_pb2, exchange_pb2_grpc, network_pb2
from govshare import envelopes, errors
from govshare.names import AgencyName

log = logging.getLogger("govshare.carrier")

CALL_SECONDS = 10.0
"""How long a member may take to answer one carried call."""
MEMBER_UNAVAILABLE = "MEMBER_UNAVAILABLE"
PAGE_SIZE = 1000
"""The page size asked of a member's listings (the most a gateway serves)."""
MAX_PAGES = 20
"""The most pages of one listing asked of a member in a row, as replication pulls at most 20
pages of a member a round: a member answering with a next page forever cannot hold a round."""
_LOST = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
"""Statuses of a call that did not reach the member's gateway (when they carry no reason)."""
FETCH_METHOD = (f"/{exchange_pb2.DESCRIPTOR.services_by_name['ExchangeService'].full_name}"
                "/FetchDataset")
CHUNK_FIELD = exchange_pb2.FetchDatasetResponse.CHUNK_FIELD_NUMBER
Relayed = exchange_pb2.FetchDatasetResponse | bytes
"""A message of a relayed stream: parsed, or a chunk message as the member's gateway sent it
(sent on as it is: gateway/rpc.py)."""


class Carrier:
    """Carries calls of this gateway's agencies to the members holding their counterparts, and
    asks those members every interval about what they still have to decide."""

    def __init__(self, forwarding: Forwarding, exchange: Exchange, relaying: Relaying,
                 network: NetworkMembership | None, channels: PeerChannels | None,
                 interval: float):
        self._forwarding = forwarding
        self._exchange = exchange
        self._relaying = relaying
        self._network = network
        self._channels = channels
        self._interval = interval
        self._reached: dict[str, float] = {}
        self._lock = threading.Lock()
        self._rounds = Periodic("forwarded", interval, self.poll)

    def start(self) -> None:
        self._rounds.start()
        self._relaying.start()

    def stop(self) -> None:
        self._rounds.stop()
        self._relaying.stop()

    # -- where a call goes -------------------------------------------------------------------

    def member_for_statement(self, call: Call,
                             envelope: envelope_pb2.Envelope) -> network_pb2.MemberGateway | None:
        """The member holding the dataset a signed access request claims to ask for, when that
        is another member (the claim is checked before anything is carried)."""
        if self._network is None:  # a gateway alone carries nothing: no decode on its path
            return None
        claimed = envelopes.claimed(envelope, envelopes.ACCESS_REQUEST)
        return self._forwarding.member_for_dataset(call, claimed.dataset) if claimed else None

    def member_for_request(self, call: Call, name: str) -> network_pb2.MemberGateway | None:
        return self._forwarding.member_for_request(call, name)

    def member_for_dataset(self, call: Call, dataset: str) -> network_pb2.MemberGateway | None:
        return self._forwarding.member_for_dataset(call, dataset)

    # -- carried calls -----------------------------------------------------------------------

    def create(self, call: Call, request: exchange_pb2.CreateAccessRequestRequest,
               member: network_pb2.MemberGateway) -> exchange_pb2.CreateAccessRequestResponse:
        """CreateAccessRequest for a dataset `member` holds: checked here as far as this gateway
        can, carried with the statement as its requester signed it, the answer kept."""
        self._exchange.open_carried(call, request.parent, request.signed_statement)
        answer = self._ask(member, call.caller.agency_name, "CreateAccessRequest", request)
        if not request.validate_only:
            with self._answer_of(call, member):
                self._forwarding.forwarded(call, member.id, request.signed_statement, answer)
        _held_by(member, answer.access_request)
        if answer.HasField("grant"):
            _held_by(member, answer.grant)
        return answer

    def get(self, call: Call, request: exchange_pb2.GetAccessRequestRequest,
            member: network_pb2.MemberGateway) -> exchange_pb2.GetAccessRequestResponse:
        """GetAccessRequest of a request `member` holds, as it answers now (and kept so)."""
        answer = self._ask(member, call.caller.agency_name, "GetAccessRequest", request)
        with self._answer_of(call, member):
            self._learn(member, answer.access_request)
        _held_by(member, answer.access_request)
        return answer

    def withdraw(self, call: Call, request: exchange_pb2.WithdrawAccessRequestRequest,
                 member: network_pb2.MemberGateway
                 ) -> exchange_pb2.WithdrawAccessRequestResponse:
        """WithdrawAccessRequest of a request `member` holds; its owner is told there."""
        answer = self._ask(member, call.caller.agency_name, "WithdrawAccessRequest", request)
        with self._answer_of(call, member):
            self._forwarding.withdrawn(call, member.id, answer.access_request, request.reason)
        _held_by(member, answer.access_request)
        return answer

    @contextmanager
    def _answer_of(self, call: Call, member: network_pb2.MemberGateway) -> Iterator[None]:
        """An answer of `member` to `call` that this gateway does not take is audited with
        the member as actor (the agency did nothing wrong), once."""
        try:
            yield
        except errors.DataLoss as exc:
            if exc.reason == MEMBER_ANSWER_INVALID:
                self._forwarding.refused(member.id, exc, call=call)
                exc.audited = True
            raise

    def relay(self, call: Call, request: exchange_pb2.FetchDatasetRequest,
              member: network_pb2.MemberGateway) -> Iterator[Relayed]:
        """FetchDataset of a dataset `member` holds: its stream passed on as it comes, checked
        and audited on the way (gateway/relaying.py); a resume resumes there. The member's
        stream ends when this one does, whichever way: the agency going away cancels it (its
        callback), and so does a relay waiting too long for it or cut while it waits. Its
        messages arrive unparsed: a chunk goes on as the bytes that came (gateway/wire.py), the
        others parsed."""
        if self._channels is None:
            raise errors.Unavailable("this gateway is no network member",
                                     reason=MEMBER_UNAVAILABLE, member=member.id)
        relay = self._relaying.open(call, member.id, request.offset)
        fetch = self._channels.channel(member).unary_stream(
            FETCH_METHOD, request_serializer=exchange_pb2.FetchDatasetRequest.SerializeToString)
        responses = fetch(request, metadata=((ON_BEHALF_KEY, call.caller.agency_name),))
        call.transport.add_callback(responses.cancel)
        try:
            with self._relaying.watched(relay, responses.cancel):
                yield from self._relayed(call, member, relay, responses)
        except BaseException as exc:
            relay.broken(exc)
            raise
        finally:
            responses.cancel()

    def _relayed(self, call: Call, member: network_pb2.MemberGateway, relay: Relay,
                 responses: Any) -> Iterator[Relayed]:
        try:
            certificate = dict(responses.initial_metadata() or ()).get(
                envelopes.GATEWAY_CERTIFICATE_KEY)
            for data in relay.received(responses):
                relay.check_more()
                field = wire.only_field(data)
                if field is not None and field[0] == CHUNK_FIELD:
                    relay.chunk(field[1])
                    yield data  # as it came: the bytes hashed are the bytes sent
                    continue
                message = relay.parsed(data)
                part = message.WhichOneof("part")
                if part == "start":
                    relay.started(message.start)
                    if certificate:  # the owner's gateway's, which signs the receipt
                        call.transport.send_initial_metadata(
                            ((envelopes.GATEWAY_CERTIFICATE_KEY, certificate),))
                elif part == "chunk":
                    relay.chunk(message.chunk)
                else:
                    relay.completed(message.receipt)
                yield message
        except grpc.RpcError as exc:
            raise relay.stopped_by() or self._failed(member, exc) from None
        relay.ended()
        self._note_reached(member.id)

    def stale_members(self, call: Call) -> list[str]:
        """The members holding the caller's open requests or grants that this gateway has not
        reached within STALE_INTERVALS intervals (since it started), or did not reach the last
        time it tried: what it lists of theirs may be out of date."""
        horizon = time.monotonic() - STALE_INTERVALS * self._interval
        with self._lock:
            return [member for member in self._forwarding.open_members(call)
                    if self._reached.get(member, horizon - 1) < horizon]

    # -- asking about what is still open -----------------------------------------------------

    def poll(self) -> dict[str, str]:
        """Ask every other member now about the carried requests still PENDING there and the
        grants still in force; what came of it per member id (one member's failure or bad
        answers never keep the others from being asked)."""
        if self._network is None:
            return {}
        outcomes = {}
        for member in self._network.others():
            if self._rounds.stopping:
                break
            outcomes[member.id] = self._poll_safely(member)
        return outcomes

    def _poll_safely(self, member: network_pb2.MemberGateway) -> str:
        refused: list[errors.GatewayError] = []
        try:
            outcome = f"{self._poll(member, refused)} learned"
        except errors.GatewayError as exc:  # the member is down, say: asked again next round
            log.warning("[network] could not ask member %s about carried requests: %s: %s",
                        member.id, exc.reason, exc.message)
            outcome = f"{exc.reason}: {exc.message}"
        except Exception:  # a failure of this gateway's own: logged, the others asked
            log.exception("[network] asking member %s about carried requests failed",
                          member.id)
            outcome = "INTERNAL: see the gateway's log"
        if refused:
            self._forwarding.refused(member.id, refused[0], len(refused) - 1)
            outcome += f"; {len(refused)} refused ({refused[0].message})"
        return outcome

    def _poll(self, member: network_pb2.MemberGateway,
              refused: list[errors.GatewayError]) -> int:
        """How many changes `member`'s answers taught; the answers not taken go to `refused`."""
        learned = 0
        for row in self._forwarding.pending(member.id):
            if self._rounds.stopping:
                return learned
            learned += self._asking(refused, self._learn_request, member, row.requester,
                                    row.name)
        for grantee in self._forwarding.grantees(member.id):
            if self._rounds.stopping:
                return learned
            learned += self._asking(refused, self._learn_grants, member, grantee)
        self._note_reached(member.id)
        return learned

    def _asking(self, refused: list[errors.GatewayError], ask: Callable[..., int],
                member: network_pb2.MemberGateway, *args: str) -> int:
        """`ask(member, *args)`, counting what it learned; the member refusing (an agency
        suspended since, say) or answering what this gateway does not take (kept in
        `refused`) lets the round go on with the next item."""
        try:
            return ask(member, *args)
        except errors.FromMember as exc:
            log.warning("[network] member %s refused a question about %s: %s", member.id,
                        ", ".join(args), exc.message)
        except errors.DataLoss as exc:
            if exc.reason != MEMBER_ANSWER_INVALID:
                raise
            refused.append(exc)
        return 0

    def _learn_request(self, member: network_pb2.MemberGateway, requester: str,
                       name: str) -> int:
        answer = self._ask(member, str(AgencyName(requester)), "GetAccessRequest",
                           exchange_pb2.GetAccessRequestRequest(name=name))
        return int(self._learn(member, answer.access_request))

    def _learn_grants(self, member: network_pb2.MemberGateway, grantee: str) -> int:
        agency = str(AgencyName(grantee))
        request = exchange_pb2.ListGrantsRequest(
            parent=agency, direction=exchange_pb2.DIRECTION_OUTGOING)
        grants = list(self._pages(member, agency, "ListGrants", request, "grants"))
        return self._forwarding.grants_learned(member.id, grants)

    def _learn(self, member: network_pb2.MemberGateway,
               answer: exchange_pb2.AccessRequest) -> bool:
        """Keep what `member` answers of a carried request, with its grant once approved."""
        grant = None
        if answer.grant and not self._forwarding.grant_held(member.id, answer.grant):
            request = exchange_pb2.ListGrantsRequest(
                parent=answer.requester, direction=exchange_pb2.DIRECTION_OUTGOING,
                dataset=answer.dataset)
            grant = next((g for g in self._pages(member, answer.requester, "ListGrants",
                                                 request, "grants") if g.name == answer.grant),
                         None)
        return self._forwarding.learned(member.id, answer, grant)

    # -- calling a member --------------------------------------------------------------------

    def _ask(self, member: network_pb2.MemberGateway, agency: str, method: str,
             request: Any) -> Any:
        """Call `method` of `member`'s ExchangeService on behalf of `agency` ("agencies/{id}")."""
        try:
            answer = ask_member(self._channels, member, exchange_pb2_grpc.ExchangeServiceStub,
                                method, request, agency)
        except errors.GatewayError as exc:
            self._note_failure(member.id, exc)
            raise
        self._note_reached(member.id)
        return answer

    def _failed(self, member: network_pb2.MemberGateway,
                exc: grpc.RpcError) -> errors.GatewayError:
        """The error of a failed call to `member`, its channel new next time if it was not
        reached."""
        assert self._channels is not None
        self._channels.failed(member, exc)
        error = carried_error(member, exc)
        self._note_failure(member.id, error)
        return error

    def _note_failure(self, member_id: str, error: errors.GatewayError) -> None:
        """A call that did not reach the member makes what it holds stale from now on."""
        if error.reason == MEMBER_UNAVAILABLE:
            with self._lock:
                self._reached.pop(member_id, None)

    def _pages(self, member: network_pb2.MemberGateway, agency: str, method: str,
               request: Any, field: str) -> Iterator[Any]:
        """The items of a listing of `member`, page after page, MAX_PAGES pages at most (a
        member answering a next page forever must not hold the round)."""
        request.page_size = PAGE_SIZE
        for _ in range(MAX_PAGES):
            page = self._ask(member, agency, method, request)
            yield from getattr(page, field)
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token
        log.warning("[network] member %s lists more than %d pages of %s for %s: the rest is"
                    " not read", member.id, MAX_PAGES, method, agency)

    def _note_reached(self, member_id: str) -> None:
        with self._lock:
            self._reached[member_id] = time.monotonic()


def ask_member(channels: PeerChannels | None, member: network_pb2.MemberGateway, stub: Any,
               method: str, request: Any, agency: str) -> Any:
    """Call `method` of `member`'s service (`stub`, a gateway.v1 stub class) on behalf of
    `agency` ("agencies/{id}"), within CALL_SECONDS: its answer, or `carried_error` (a call
    that did not reach it makes its channel new next time)."""
    if channels is None:
        raise errors.Unavailable("this gateway is no network member",
                                 reason=MEMBER_UNAVAILABLE, member=member.id)
    try:
        return getattr(stub(channels.channel(member)), method)(
            request, metadata=((ON_BEHALF_KEY, agency),), timeout=CALL_SECONDS)
    except grpc.RpcError as exc:
        channels.failed(member, exc)
        raise carried_error(member, exc) from None


def carried_error(member: network_pb2.MemberGateway, exc: grpc.RpcError) -> errors.GatewayError:
    """The error a failed call to `member` gives the agency it was carried for: the member's
    refusal as it came, or UNAVAILABLE MEMBER_UNAVAILABLE when the call did not reach it."""
    answer = from_rpc_error(exc)
    if exc.code() in _LOST and not answer.reason:
        return errors.Unavailable(
            f"member {member.id} ({member.address}), which holds what was asked for, does not"
            f" answer ({exc.code().name}: {exc.details()}): retry later",
            reason=MEMBER_UNAVAILABLE, member=member.id)
    return errors.FromMember(exc.code().name, f"member {member.id} answered: {answer.message}",
                             reason=answer.reason,
                             metadata={**answer.metadata, "network_member": member.id})


def _held_by(member: network_pb2.MemberGateway, item: Any) -> None:
    """Mark a request or grant answered by `member` as held there."""
    item.network_member = member.id
