"""What the domain sees of a request: who calls, for what, the audit scope, and the stream hooks.

The transport (gateway/rpc.py) builds a `Call` for every RPC; the domain reads the caller, names
the resources a refusal should record, and builds the call's audit events from it. What the
domain needs of the stream itself (initial metadata, a callback when the call ends) it asks of
the `Transport`, never of gRPC: grpc.ServicerContext is one, a test's stand-in another.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gateway.identity import Caller
from gateway.models import Agency
from gateway.v1 import network_pb2
from govshare import errors, signing
from govshare.transparency import record

MAX_RECORDED_NAME = 256
"""A refused request may name anything, of any length; its event records each name clipped to
this many bytes (the request digest binds the whole request), so that one refusal cannot make an
event larger than a reply may carry."""


class Transport(Protocol):
    """The stream hooks of a call in progress (grpc.ServicerContext has these methods)."""

    def send_initial_metadata(self, initial_metadata: tuple[tuple[str, Any], ...]) -> None:
        """Send response headers before the first message."""

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Run `callback` when the call ends; False when it has ended already (never run)."""

    def is_active(self) -> bool:
        """Whether the call is still going (the client has not cancelled nor gone away)."""


@dataclass
class Call:
    """One RPC in progress: who calls, for what, and what the audit log should say about it."""

    caller: Caller
    action: str
    transport: Transport
    time: datetime
    """When the call was received, by the gateway's clock: "now" for everything the call
    decides (the unit of work stamps its changes with its own time, and streams read the clock
    again as they go)."""
    agency: Agency | None = None
    """The caller's directory entry, for agency callers."""
    peer: network_pb2.MemberGateway | None = None
    """The network member a peer gateway caller is (its entry in the configuration held)."""
    via: Caller | None = None
    """The peer gateway carrying the call when it speaks for one of its agencies, who is then
    the `caller` (`act_for`); None when the caller called itself."""
    resources: list[str] = field(default_factory=list)
    """Resource names the call concerns, recorded with a refusal."""
    request: Any = None
    """The request message (None for client streams), digested only if an event needs it."""

    def act_for(self, agency: Agency) -> None:
        """Act as `agency`, an agency homed at the peer that calls (checked by the door): from
        here on the call is that agency's, carried by the peer (`via`)."""
        self.via = self.caller
        self.caller = Caller.agency(agency.id)
        self.agency = agency

    @property
    def connection(self) -> Caller:
        """The caller whose certificate the connection presented: the carrying peer, or the
        caller itself (what a revocation check rechecks)."""
        return self.via or self.caller

    @functools.cached_property
    def request_digest(self) -> str:
        """Hex SHA-256 of the request as received (reads that succeed never need it)."""
        return digest_of(self.request) if self.request is not None else ""

    def event(self, action: str | None = None, **fields: Any) -> record.Event:
        """An ALLOWED audit event for this call; `fields` are record.Event fields. The caller's
        own agency is always among the agencies concerned, so it sees its own actions."""
        fields.setdefault("resources", tuple(self.resources))
        fields["agencies"] = (*self._own_agency(), *fields.get("agencies", ()))
        return record.Event(
            actor=self.caller.uri,
            action=action or self.action,
            request_digest=self.request_digest,
            via=self.via.uri if self.via else "",
            **fields,
        )

    def refusal(self, error: errors.GatewayError) -> record.Event:
        """The REFUSED audit event for `error` raised by this call."""
        return refusal_event(self.caller.uri, self.action, self.resources, self.request_digest,
                             error, self._own_agency(), self.via.uri if self.via else "")

    def _own_agency(self) -> tuple[str, ...]:
        return (self.caller.agency_name,) if self.caller.agency_name else ()


def refusal_event(
    actor: str, action: str, resources: Iterable[str], digest: str, error: errors.GatewayError,
    agencies: tuple[str, ...] = (), via: str = "",
) -> record.Event:
    return record.Event(
        actor=actor,
        action=action,
        resources=tuple(dict.fromkeys(errors.clip(r, MAX_RECORDED_NAME) for r in resources if r)),
        outcome=record.REFUSED,
        reason=f"{error.reason}: {error.message}",
        request_digest=digest,
        agencies=agencies,
        via=via,
    )


def digest_of(message: Any) -> str:
    """Hex SHA-256 of a request message as serialised."""
    return signing.sha256(message.SerializeToString()).hex()
