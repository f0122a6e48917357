"""The one wrapper every RPC runs in: identity, authorization, error mapping, refusal audit, log.

A servicer method decorated with `@rpc(action, allow=...)` receives a `Call` (gateway/context.py)
instead of the raw gRPC context, which the Call carries only as its `Transport`, so the domain
never sees gRPC. The wrapper establishes the caller from the peer certificate (never from the
request), refuses callers of the wrong kind or agencies not registered and active, turns a
`GatewayError` into its gRPC status with ErrorInfo (through gateway/status.py), records every
refusal in the audit log, and writes one log line per RPC. A gateway that is a network member
and whose network configuration has expired refuses every call at the door (but the
configuration's own read, declared with `fail_closed=False`). Anything unexpected becomes INTERNAL
with a request id; the traceback goes to the log only. A request that does not parse (corrupt
bytes, invalid UTF-8 in a string) reaches the wrapper as `Undecodable` (see `MessageCodecs`) and
is refused, and audited, with INVALID_ARGUMENT once the caller is known.

A peer gateway speaks for one of its own agencies with the call metadata `govshare-on-behalf-of:
agencies/{id}` on the RPCs declared `on_behalf=True` (those an agency of another member reaches
through its home gateway): once the agency checks out as homed at that very peer and active
there (`Directory.homed_at`), the call acts as that agency (`Call.act_for`), with the same
authorization, policy and limits as a local agency, and its audit events name the agency as
actor and the peer as `via`. The metadata from any caller but a peer, on any other RPC, or for
an agency the peer does not serve, is refused PERMISSION_DENIED with a reason saying which.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError

from gateway import refusals, status
from gateway.context import Call, digest_of, refusal_event
from gateway.directory import Directory
from gateway.federation import NetworkMembership, peer_refused
from gateway.identity import AGENCY, ON_BEHALF_KEY, PEER, Authenticator
from gateway.limits import Limiter
from gateway.refusals import RefusalBudget
from gateway.unit_of_work import UnitOfWork
from govshare import errors
from govshare.names import AgencyName
from govshare.transparency import record

log = logging.getLogger("govshare.rpc")


class Gateway(Protocol):
    """What the wrapper uses of the gateway a servicer serves (`self.gateway`): the door's
    checks, the clock that dates each call, and the unit of work that audits refusals."""

    authenticator: Authenticator
    directory: Directory
    network: NetworkMembership | None
    """The network configuration held; None when the gateway is no network member."""
    limiter: Limiter
    refusals: RefusalBudget
    work: UnitOfWork

    def now(self) -> datetime:
        """The gateway's clock."""

_NAME_FIELDS = ("name", "parent", "dataset", "exchange")


class Undecodable:
    """A request message that did not parse, kept as its bytes (so its digest is recorded)."""

    def __init__(self, data: bytes, problem: str):
        self.data = data
        self.problem = problem

    def SerializeToString(self) -> bytes:  # the protobuf name, which digest_of calls
        return self.data

    def refusal(self) -> errors.InvalidArgument:
        return errors.InvalidArgument(
            f"the request is not a valid message ({self.problem}); send the message the RPC"
            " takes, with UTF-8 strings", reason="MALFORMED_REQUEST", field="request")


class MessageCodecs(grpc.ServerInterceptor):
    """The gateway.v1 methods' message codecs: a request that does not parse reaches the
    wrapper as `Undecodable`, instead of grpcio answering INTERNAL ("Exception deserializing
    request!") unaudited; a response that is `bytes` was serialised already (a relayed chunk,
    gateway/carrier.py) and goes out as it is."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation: Callable, details: Any) -> Any:
        guarded = self._handlers.get(details.method)
        if guarded is None:
            handler = continuation(details)
            if handler is None or not details.method.startswith("/gateway.v1."):
                return handler
            guarded = handler._replace(
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=_passing_bytes(handler.response_serializer))
            self._handlers[details.method] = guarded
        return guarded


def _passing_bytes(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def serialize_or_pass(message: Any) -> bytes:
        return message if type(message) is bytes else serialize(message)

    return serialize_or_pass


def _lenient(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return Undecodable(data, str(exc))

    return deserialize


def _parsed(requests: Any) -> Any:
    """A client stream whose messages are refused one by one if they did not parse; a single
    request is checked by _Scope.begin."""
    if not isinstance(requests, Iterator):
        return requests
    return _each_parsed(requests)


def _each_parsed(requests: Iterator[Any]) -> Iterator[Any]:
    for message in requests:
        if isinstance(message, Undecodable):
            raise message.refusal()
        yield message


def rpc(action: str, *, allow: tuple[str, ...] = (AGENCY,), fail_closed: bool = True,
        on_behalf: bool = False) -> Callable:
    """Decorate a servicer method `(self, request, call)`; see the module docstring.
    `fail_closed=False` serves the call also once the network configuration has expired;
    `on_behalf=True` lets a peer call it for one of its agencies."""
    door = _Door(allow, fail_closed, on_behalf)

    def decorate(method: Callable) -> Callable:
        if inspect.isgeneratorfunction(method):

            @functools.wraps(method)
            def streaming(self: Any, request: Any, context: grpc.ServicerContext) -> Iterable:
                scope = _Scope(self.gateway, context, action, request)
                try:
                    yield from method(self, request, scope.begin(door))
                    scope.finish("OK")
                except GeneratorExit:  # the client went away mid-stream
                    scope.finish("CANCELLED")
                    raise
                except Exception as exc:
                    scope.fail(exc)

            return streaming

        @functools.wraps(method)
        def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            scope = _Scope(self.gateway, context, action, request)
            try:
                response = method(self, _parsed(request), scope.begin(door))
                scope.finish("OK")
                return response
            except Exception as exc:
                scope.fail(exc)

        return unary

    return decorate


class _Door:
    """What an RPC admits: the kinds of caller, whether it is served once the network
    configuration has expired, and whether a peer may call it for one of its agencies."""

    def __init__(self, allow: tuple[str, ...], fail_closed: bool, on_behalf: bool):
        self.allow = allow
        self.fail_closed = fail_closed
        self.on_behalf = on_behalf


class _Scope:
    """One RPC inside the wrapper: establishes the Call, then logs, or maps and audits a
    failure."""

    def __init__(self, gateway: Gateway, context: grpc.ServicerContext, action: str,
                 request: Any):
        self.gateway = gateway
        self.context = context
        self.action = action
        self.request = request
        self.call: Call | None = None
        self.admitted = False
        self.started = time.perf_counter()

    def begin(self, door: _Door) -> Call:
        self.call = _identify(self.gateway, self.context, self.action, self.request)
        _admit(self.gateway, self.call, door, _claimed(self.context))
        self.admitted = True
        if isinstance(self.request, Undecodable):
            raise self.request.refusal()
        return self.call

    def finish(self, status: str) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        caller = self.call.caller.uri if self.call else "-"
        log.info(
            "rpc method=%s caller=%s peer=%s status=%s ms=%.1f",
            self.action, caller, self.context.peer(), status,
            (time.perf_counter() - self.started) * 1000,
        )

    def fail(self, exc: Exception) -> None:
        """Abort the RPC with the status of `exc`; refusals are audited, surprises logged."""
        if not isinstance(exc, errors.GatewayError):
            request_id = uuid.uuid4().hex
            log.exception("unexpected error in %s (request id %s)", self.action, request_id)
            exc = errors.GatewayError(
                f"internal error; quote request id {request_id} to the operator",
                reason="INTERNAL",
                request_id=request_id,
            )
        else:
            audit_refusal(self.gateway, self.action, self.call, self.request, exc,
                           at_door=not self.admitted)
        self.finish(exc.code)
        self.context.abort_with_status(status.to_rpc_status(exc))


def _identify(
    gateway: Gateway, context: grpc.ServicerContext, action: str, request: Any
) -> Call:
    """The Call of an authenticated caller (UNAUTHENTICATED otherwise)."""
    pem = context.auth_context().get("x509_pem_cert")  # verified in the TLS handshake
    caller = gateway.authenticator.authenticate(pem[0] if pem else None)
    call = Call(caller=caller, action=action, transport=context, time=gateway.now())
    if hasattr(request, "SerializeToString"):
        call.request = request
        call.resources = [getattr(request, f) for f in _NAME_FIELDS if getattr(request, f, "")]
    return call


def _claimed(context: grpc.ServicerContext) -> str:
    """The agency the call's metadata says it is carried for ("": none); INVALID_ARGUMENT
    ON_BEHALF_INVALID when it says so more than once, since which one would hold is no one's
    to guess."""
    values = [value for key, value in context.invocation_metadata() or ()
              if key == ON_BEHALF_KEY]
    if len(values) > 1:
        raise errors.InvalidArgument(f"{ON_BEHALF_KEY} must be sent once, naming one agency",
                                     reason="ON_BEHALF_INVALID", field=ON_BEHALF_KEY)
    return values[0] if values else ""


def _admit(gateway: Gateway, call: Call, door: _Door, claimed: str) -> None:
    """Refuse gateways that are not peers, metadata speaking for an agency that does not
    (`_speak_for`), callers of the wrong kind, any call but those not `fail_closed` once the
    network configuration has expired, agencies not registered and active, and floods."""
    if call.caller.kind == PEER:  # not a peer at all before its role is considered
        if gateway.network is None:
            raise peer_refused(call.caller, "this gateway is not a member of a network")
        call.peer = gateway.network.peer(call.caller)
        if claimed:
            _speak_for(gateway, call, claimed, door.on_behalf)
    elif claimed:
        raise errors.PermissionDenied(
            f"{call.caller.uri} sent {ON_BEHALF_KEY}, which only a member gateway of the"
            " network sends, for an agency it serves: call without it, as yourself",
            reason="ON_BEHALF_NOT_A_PEER", identity=call.caller.uri)
    caller = call.caller
    if caller.kind not in door.allow:
        if caller.kind == PEER and door.on_behalf:
            raise errors.PermissionDenied(
                f"a peer gateway calls {call.action} only for one of its agencies: send"
                f" {ON_BEHALF_KEY}: agencies/{{id}}", reason="ON_BEHALF_REQUIRED",
                role=caller.kind)
        raise errors.PermissionDenied(
            f"{caller.kind} certificates may not call {call.action}",
            reason="ROLE_NOT_ALLOWED",
            role=caller.kind,
        )
    if door.fail_closed and gateway.network is not None:
        gateway.network.check_current(call.time)
    if caller.kind == AGENCY and call.agency is None:
        call.agency = gateway.directory.registered(caller)
    gateway.limiter.admit(caller.uri)


def _speak_for(gateway: Gateway, call: Call, claimed: str, on_behalf: bool) -> None:
    """Make `call`, from a peer, act as the agency `claimed` names: one homed at that peer and
    active there, on an RPC a peer may call for its agencies; PERMISSION_DENIED otherwise."""
    call.resources.append(claimed)  # a refusal names the agency claimed
    try:
        agency_id = AgencyName.parse(claimed, ON_BEHALF_KEY).agency
    except errors.InvalidArgument:
        raise errors.InvalidArgument(
            f"{ON_BEHALF_KEY} must name an agency, agencies/{{id}}", reason="ON_BEHALF_INVALID",
            field=ON_BEHALF_KEY) from None
    assert call.peer is not None
    call.act_for(gateway.directory.homed_at(call.peer.id, agency_id))
    if not on_behalf:
        raise errors.PermissionDenied(
            f"{call.action} is not called for an agency by its home gateway: only creating,"
            " reading, listing and withdrawing access requests, listing grants, fetching, and"
            " reading audit events, checkpoints and proofs are",
            reason="ON_BEHALF_NOT_ALLOWED", agency=claimed)


def audit_refusal(
    gateway: Gateway, action: str, call: Call | None, request: Any, error: errors.GatewayError,
    *, at_door: bool,
) -> None:
    """Audit a refusal; one made before the call was admitted only within the caller's budget
    of audited refusals (counted and summarised beyond it: gateway/refusals.py)."""
    if getattr(error, "audited", False):
        return  # the change's own refusal event was committed with it
    if call is not None:
        event = call.refusal(error)
    else:
        actor = error.metadata.get("identity", record.ANONYMOUS)
        digest = digest_of(request) if hasattr(request, "SerializeToString") else ""
        names = [getattr(request, f, "") for f in _NAME_FIELDS]
        event = refusal_event(actor, action, names, digest, error)
    refusals.audit(gateway.refusals, gateway.work.append, event, error.reason,
                   within_budget=at_door)

