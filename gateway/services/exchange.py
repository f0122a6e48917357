"""ExchangeService: access requests, decisions, grants, fetches and events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from gateway.carrier import Carrier
from gateway.context import Call
from gateway.events import Events
from gateway.exchange import Exchange, decode_statement, require_parent
from gateway.fetch import Fetcher
from gateway.identity import ADMIN, AGENCY
from gateway.limits import Limiter
from gateway.models import AccessRequest, Grant
from gateway.rpc import Gateway, rpc
from gateway.v1 import catalog_pb2, envelope_pb2, exchange_pb2, exchange_pb2_grpc
from govshare import times
from govshare.enums import enum_value
from govshare.names import AgencyName


def request_proto(row: AccessRequest, at: datetime) -> exchange_pb2.AccessRequest:
    """The AccessRequest of `row`, its lateness as of `at` (the time the call was received)."""
    message = exchange_pb2.AccessRequest(
        name=row.name,
        requester=str(AgencyName(row.requester)),
        owner=str(AgencyName(row.owner)),
        dataset=row.dataset,
        statement=decode_statement(row),
        signed_statement=envelope_pb2.Envelope.FromString(row.signed_statement),
        state=exchange_pb2.AccessRequestState.Value(f"ACCESS_REQUEST_STATE_{row.current_state}"),
        state_reason=row.state_reason,
        decide_deadline=times.to_timestamp(row.decide_deadline),
        overdue=row.overdue_at(times.to_text(at)),
        grant=row.grant_name or "",
        create_time=times.to_timestamp(row.create_time),
        decide_time=times.to_timestamp(row.decide_time),
        network_member=row.member or "",
    )
    if row.signed_decision:
        message.signed_decision.ParseFromString(row.signed_decision)
    return message


def grant_proto(row: Grant) -> exchange_pb2.Grant:
    state = row.current_state
    return exchange_pb2.Grant(
        name=row.name,
        grantee=str(AgencyName(row.grantee)),
        owner=str(AgencyName(row.owner)),
        dataset=row.dataset,
        access_request=row.access_request,
        fields=json.loads(row.fields),
        state=exchange_pb2.GrantState.Value(f"GRANT_STATE_{state}"),
        signed_statement=envelope_pb2.Envelope.FromString(row.signed_statement),
        create_time=times.to_timestamp(row.create_time),
        expire_time=times.to_timestamp(row.expire_time),
        revoke_time=times.to_timestamp(row.revoke_time),
        revoke_reason=row.revoke_reason,
        max_classification=enum_value(catalog_pb2.Classification, row.max_classification),
        max_sharing_type=enum_value(catalog_pb2.SharingType, row.max_sharing_type),
        network_member=row.member or "",
    )


class ExchangeService(exchange_pb2_grpc.ExchangeServiceServicer):
    """The exchange RPCs; a call about what an agency of another member holds goes there
    (`carrier`), the others to this gateway's domain."""

    def __init__(self, gateway: Gateway, exchange: Exchange, fetcher: Fetcher, events: Events,
                 limiter: Limiter, carrier: Carrier):
        self.gateway = gateway
        self._exchange = exchange
        self._fetcher = fetcher
        self._events = events
        self._limiter = limiter
        self._carrier = carrier

    @rpc("exchange.request.create", on_behalf=True)
    def CreateAccessRequest(self, request: Any, call: Call) -> Any:
        member = self._carrier.member_for_statement(call, request.signed_statement)
        if member is not None:
            return self._carrier.create(call, request, member)
        created = self._exchange.create_request(
            call, request.parent, request.signed_statement, request.validate_only)
        response = exchange_pb2.CreateAccessRequestResponse(
            access_request=request_proto(created.request, call.time))
        if created.grant is not None:
            response.grant.CopyFrom(grant_proto(created.grant))
        return response

    @rpc("exchange.request.get", on_behalf=True)
    def GetAccessRequest(self, request: Any, call: Call) -> Any:
        member = self._carrier.member_for_request(call, request.name)
        if member is not None:
            return self._carrier.get(call, request, member)
        row = self._exchange.get_request(call, request.name)
        return exchange_pb2.GetAccessRequestResponse(
            access_request=request_proto(row, call.time))

    @rpc("exchange.request.list", on_behalf=True)
    def ListAccessRequests(self, request: Any, call: Call) -> Any:
        page = self._exchange.list_requests(call, request)
        return exchange_pb2.ListAccessRequestsResponse(
            access_requests=[request_proto(row, call.time) for row in page.items],
            next_page_token=page.next_page_token, stale_members=self._stale(call, request))

    @rpc("exchange.request.approve")
    def ApproveAccessRequest(self, request: Any, call: Call) -> Any:
        decided = self._exchange.decide_request(call, request.name, request.signed_decision,
                                                approve=True)
        return exchange_pb2.ApproveAccessRequestResponse(
            access_request=request_proto(decided.request, call.time),
            grant=grant_proto(decided.grant))

    @rpc("exchange.request.deny")
    def DenyAccessRequest(self, request: Any, call: Call) -> Any:
        decided = self._exchange.decide_request(call, request.name, request.signed_decision,
                                                approve=False)
        return exchange_pb2.DenyAccessRequestResponse(
            access_request=request_proto(decided.request, call.time))

    @rpc("exchange.request.withdraw", on_behalf=True)
    def WithdrawAccessRequest(self, request: Any, call: Call) -> Any:
        member = self._carrier.member_for_request(call, request.name)
        if member is not None:
            return self._carrier.withdraw(call, request, member)
        row = self._exchange.withdraw_request(call, request.name, request.reason)
        return exchange_pb2.WithdrawAccessRequestResponse(
            access_request=request_proto(row, call.time))

    @rpc("exchange.grant.list", on_behalf=True)
    def ListGrants(self, request: Any, call: Call) -> Any:
        page = self._exchange.list_grants(call, request)
        return exchange_pb2.ListGrantsResponse(grants=map(grant_proto, page.items),
                                               next_page_token=page.next_page_token,
                                               stale_members=self._stale(call, request))

    @rpc("exchange.grant.revoke", allow=(AGENCY, ADMIN))
    def RevokeGrant(self, request: Any, call: Call) -> Any:
        row = self._exchange.revoke_grant(call, request.name, request.reason)
        return exchange_pb2.RevokeGrantResponse(grant=grant_proto(row))

    @rpc("exchange.fetch", on_behalf=True)
    def FetchDataset(self, request: Any, call: Call) -> Iterator[Any]:
        with self._limiter.stream(call.caller.uri):
            member = self._carrier.member_for_dataset(call, request.dataset)
            if member is not None:
                yield from self._carrier.relay(call, request, member)
            else:
                yield from self._fetcher.serve(call, request.dataset, request.offset,
                                               request.exchange)

    @rpc("exchange.watch")
    def WatchEvents(self, request: Any, call: Call) -> Iterator[Any]:
        require_parent(call, request.parent)
        with self._limiter.stream(call.caller.uri):
            yield from self._events.watch(call, request.cursor, list(request.follow))

    def _stale(self, call: Call, request: Any) -> list[str]:
        """The members whose copies an outgoing listing may show out of date."""
        if request.direction != exchange_pb2.DIRECTION_OUTGOING:
            return []
        return self._carrier.stale_members(call)
