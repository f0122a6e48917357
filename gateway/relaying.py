"""A fetch across the network, as the requester's gateway relays it.

An agency fetches a dataset of an agency homed at another member from its own gateway, which
opens that member's FetchDataset on the agency's behalf and passes the stream on (the gRPC side
is gateway/carrier.py): the FetchStart, the chunks and the receipt the owner's gateway signed,
unchanged. A `Relay` is what this gateway keeps of one such stream:

- the same stops as a local fetch, from this side: every GRANT_CHECK_SECONDS it checks again
  that the requester's certificate is not revoked, that it is registered and active here, and
  that the owner's gateway is still a member of the configuration held (the owner's gateway
  checks the grant, and the requester's state as replicated there); while the owner's gateway
  sends nothing, one thread (`Relaying.start`) checks the same for every relay waiting, and
  cuts a relay once it waited [network] relay_idle_seconds for the next message (UNAVAILABLE
  RELAY_IDLE): a member that hangs holds neither the agency's stream slots nor a server
  thread. A cut cancels the owner's stream, which ends the wait;
- the content on the way: it hashes the bytes it passes on (SHA-256, as the SDK does) and, before
  the receipt goes on, checks that the receipt verifies with the owner's gateway's signing
  certificate of the network configuration, is of this exchange and requester, names this gateway
  as the last of its carriers, and binds what was passed on (`delivered_size`, and
  `delivered_sha256` for a stream from the first byte; a resumed one passes on only the bytes
  after its offset, so only their count is checked). A mismatch breaks the exchange here with
  DATA_LOSS RELAYED_CONTENT_MISMATCH before the receipt reaches the agency: this gateway never
  vouches, in its log, for bytes the receipt does not bind;
- its end: a stream the owner's gateway ends without a receipt (or with anything after it)
  is DATA_LOSS RELAY_NO_RECEIPT here, never OK: the agency got no proof of what it received;
- its log: `exchange.fetch.relay.start` when the owner's gateway starts the exchange,
  `exchange.fetch.relay.complete` with the receipt's envelope id once it checked out,
  `exchange.fetch.relay.break` (the refusal itself, when one broke it) otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from google.protobuf.message import DecodeError

from certs import member_signing
from gateway.context import Call
from gateway.directory import Directory
from gateway.federation import NetworkMembership
from gateway.fetch import GRANT_CHECK_SECONDS, broken_by
from gateway.identity import Authenticator
from gateway.periodic import Periodic
from gateway.unit_of_work import UnitOfWork
from gateway.v1 import envelope_pb2, exchange_pb2
from govshare import envelopes, errors, signing
from govshare.names import ExchangeName, VersionName
from govshare.signing import StreamHasher
from govshare.transparency import record

log = logging.getLogger("govshare.relaying")

START = "exchange.fetch.relay.start"
COMPLETE = "exchange.fetch.relay.complete"
BREAK = "exchange.fetch.relay.break"
NO_RECEIPT = "RELAY_NO_RECEIPT"
IDLE = "RELAY_IDLE"

Message = TypeVar("Message")


class Relaying:
    """Opens the `Relay` of each relayed fetch, from the parts its checks use."""

    def __init__(self, work: UnitOfWork, directory: Directory, authenticator: Authenticator,
                 network: NetworkMembership | None, idle_seconds: float):
        self._work = work
        self._directory = directory
        self._authenticator = authenticator
        self._network = network
        self.idle_seconds = idle_seconds
        self._relays: set[Relay] = set()
        self._lock = threading.Lock()
        self._watch = Periodic("relay-watch", GRANT_CHECK_SECONDS, self.watch)

    def start(self) -> None:
        """Watch the relays in progress from one thread, until `stop`."""
        self._watch.start()

    def stop(self) -> None:
        self._watch.stop()

    def open(self, call: Call, member: str, offset: int) -> Relay:
        """The relay of `call`'s fetch from `member`, from byte `offset`."""
        return Relay(self, call, member, offset)

    @contextmanager
    def watched(self, relay: Relay, cancel: Callable[[], object]) -> Iterator[None]:
        """While in the block, `relay` is watched, and `cancel` (the owner's stream's) cuts
        it."""
        relay.cancel = cancel
        with self._lock:
            self._relays.add(relay)
        try:
            yield
        finally:
            with self._lock:
                self._relays.discard(relay)

    def watch(self) -> None:
        """One look at every relay in progress (the watching thread's round)."""
        now = time.monotonic()
        with self._lock:
            relays = list(self._relays)
        for relay in relays:
            relay.watch(now)

    @property
    def own_id(self) -> str:
        """This gateway's id in its network: the last carrier of what it relays."""
        return self._network.own_id if self._network is not None else ""

    def check_allowed(self, call: Call, member_id: str) -> None:
        """Stop a relay when its requester's certificate was revoked or the requester
        suspended here (UNAUTHENTICATED, PERMISSION_DENIED as at a call's start), or when the
        configuration held no longer names member `member_id` (UNAVAILABLE)."""
        self._authenticator.recheck(call.connection)
        self._directory.acting(call)
        held = self._network.current if self._network is not None else None
        if held is None or held.member(member_id) is None:
            raise errors.Unavailable(
                f"member {member_id} is no longer in network configuration version"
                f" {held.version if held else 0}: the fetch relayed from it was stopped",
                reason="MEMBER_UNAVAILABLE", member=member_id)

    def verified_receipt(self, member_id: str,
                         envelope: envelope_pb2.Envelope) -> exchange_pb2.Receipt:
        """The receipt a member signed, once it verifies with that member's signing
        certificate of the configuration held."""
        member = self._network.current.member(member_id) if self._network else None
        try:
            if member is None:
                raise ValueError(f"member {member_id} is not in the configuration held")
            return member_signing.open_signed(member, envelope, envelopes.RECEIPT,
                                              exchange_pb2.Receipt, "complete_time")
        except (signing.SignatureError, ValueError) as exc:
            raise _mismatch(member_id, f"its receipt is not signed with its signing"
                                       f" certificate ({exc})") from None

    def audit(self, event: record.Event) -> None:
        self._work.append([event])


class Relay:
    """One relayed fetch: its checks, its content check and its audit events."""

    def __init__(self, parts: Relaying, call: Call, member: str, offset: int):
        self._parts = parts
        self._call = call
        self._member = member
        self._offset = offset
        self._hasher = StreamHasher()
        self._start: exchange_pb2.FetchStart | None = None
        self._owner = ""
        self._ended = False
        self._next_check = time.monotonic() + GRANT_CHECK_SECONDS
        self.cancel: Callable[[], object] = lambda: None
        """Cancels the owner's stream (set while `Relaying.watched`)."""
        self._cut: errors.GatewayError | None = None
        self._waiting_since: float | None = time.monotonic()
        """Since when the relay waits for the owner's gateway (its headers first); None while
        it passes a message on."""

    def started(self, start: exchange_pb2.FetchStart) -> None:
        """The owner's gateway started the exchange: audited here too."""
        exchange = ExchangeName.match(start.exchange)
        version = VersionName.match(start.dataset_version)
        if (self._start is not None or exchange is None or version is None
                or exchange.agency != self._call.caller.identity.id):
            raise _mismatch(self._member, f"it started {start.exchange!r} of"
                                          f" {start.dataset_version!r}, not an exchange of"
                                          f" {self._call.caller.agency_name}")
        self._start = start
        self._owner = str(version.dataset.owner)
        self._call.resources = list(self._resources())
        self._audit(self._call.event(START, resources=self._resources(),
                                     reason=f"from member {self._member}; offset"
                                            f" {start.offset}"))

    def parsed(self, data: bytes) -> exchange_pb2.FetchDatasetResponse:
        """A message of the member's stream, parsed; DATA_LOSS RELAYED_CONTENT_MISMATCH when
        it is none."""
        try:
            return exchange_pb2.FetchDatasetResponse.FromString(data)
        except DecodeError as exc:
            raise _mismatch(self._member, f"it sent a message that is not a"
                                          f" FetchDatasetResponse ({exc})") from None

    def chunk(self, data: bytes | memoryview) -> None:
        """A chunk passed on: hashed, and the requester checked again when due."""
        self._hasher.update(data)
        if time.monotonic() >= self._next_check:
            self._parts.check_allowed(self._call, self._member)
            self._next_check = time.monotonic() + GRANT_CHECK_SECONDS

    def completed(self, envelope: envelope_pb2.Envelope) -> None:
        """Check the receipt against what was passed on (see the module docstring), then
        audit the completed relay; DATA_LOSS RELAYED_CONTENT_MISMATCH otherwise."""
        self._parts.check_allowed(self._call, self._member)
        receipt = self._parts.verified_receipt(self._member, envelope)
        start = self._start
        expected = self._offset + self._hasher.size
        problems = [what for what, ok in (
            ("exchange", start is not None and receipt.exchange == start.exchange),
            ("requester", receipt.requester == self._call.caller.agency_name),
            ("carriers", receipt.carriers[-1:] == [self._parts.own_id]),
            ("delivered size", receipt.delivered_size == expected),
            ("delivered SHA-256", self._offset > 0
             or receipt.delivered_sha256 == self._hasher.digest()),
        ) if not ok]
        if problems:
            raise _mismatch(self._member, f"its receipt does not match what was relayed:"
                                          f" {', '.join(problems)}")
        self._ended = True
        checked = (f"size checked (resumed at {self._offset})" if self._offset
                   else "SHA-256 and size checked")
        self._audit(self._call.event(
            COMPLETE, resources=self._resources(), envelope_ids=(envelopes.envelope_id(envelope),),
            reason=f"from member {self._member}; {self._hasher.size} bytes relayed, {checked}"))

    def ended(self) -> None:
        """The owner's gateway ended its stream: DATA_LOSS RELAY_NO_RECEIPT unless its receipt
        came and checked out (an empty stream, or one cut short, is no delivery)."""
        if not self._ended:
            raise _no_receipt(self._member, "it ended the stream without a receipt")

    def check_more(self) -> None:
        """A message after the receipt: the stream ends with the receipt."""
        if self._ended:
            raise _no_receipt(self._member, "it sent more after the receipt")

    def stopped_by(self) -> errors.GatewayError | None:
        """Why the owner's stream was cancelled from this side, if it was: a cut (`watch`),
        or the agency going away (CANCELLED)."""
        if self._cut is not None:
            return self._cut
        if not self._call.transport.is_active():
            return errors.Cancelled(f"{self._call.caller.agency_name} ended the stream")
        return None

    def received(self, messages: Iterator[Message]) -> Iterator[Message]:
        """The owner's gateway's messages, noting while the relay waits for the next one (what
        `watch` measures; a wait for the agency to take a message is not the member's)."""
        while True:
            self._waiting_since = time.monotonic()
            try:
                message = next(messages)
            except StopIteration:
                return
            finally:
                self._waiting_since = None
            yield message

    def watch(self, now: float) -> None:
        """From the watching thread: cut the relay when the owner's gateway has sent nothing
        for relay_idle_seconds, or when what `chunk` checks as it goes stops it; checked only
        while it waits for that gateway (a relay passing bytes on checks itself)."""
        since = self._waiting_since
        if since is None or now - since < GRANT_CHECK_SECONDS or self._cut is not None:
            return
        waited = now - since
        try:
            if waited >= self._parts.idle_seconds:
                raise errors.Unavailable(
                    f"member {self._member} sent nothing for {self._parts.idle_seconds:g} s:"
                    " the fetch relayed from it was stopped; fetch again to resume it",
                    reason=IDLE, member=self._member)
            self._parts.check_allowed(self._call, self._member)
        except errors.GatewayError as cut:
            self._cut = cut
            self.cancel()

    def broken(self, exc: BaseException) -> None:
        """Audit the relay broken by `exc` (the refusal itself when it is one, so it is not
        audited twice); nothing when it ended already or never started."""
        if self._ended or self._start is None:
            return
        self._ended = True
        reason, outcome = broken_by(exc)
        try:
            self._audit(self._call.event(BREAK, resources=self._resources(), outcome=outcome,
                                         reason=f"from member {self._member}; {reason}"))
        except errors.GatewayError as failure:  # a full disk, a stopping gateway: logged
            log.error("could not audit the break of relayed %s: %s", self._start.exchange,
                      failure.message)
            return
        if isinstance(exc, errors.GatewayError):
            exc.audited = True

    def _resources(self) -> tuple[str, ...]:
        start = self._start
        assert start is not None
        return (start.exchange, self._call.caller.agency_name, self._owner,
                start.dataset_version, start.grant)

    def _audit(self, event: record.Event) -> None:
        self._parts.audit(event)


def _no_receipt(member: str, why: str) -> errors.DataLoss:
    return errors.DataLoss(f"the fetch relayed from member {member} was stopped: {why}",
                           reason=NO_RECEIPT, member=member)


def _mismatch(member: str, why: str) -> errors.DataLoss:
    return errors.DataLoss(f"the fetch relayed from member {member} was stopped: {why}",
                           reason="RELAYED_CONTENT_MISMATCH", member=member)

