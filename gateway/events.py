"""WatchEvents: the events that concern an agency, in order, resumable from a cursor.

Events are rows of the `events` table written in the same change as what they report. A
watcher polls the table (every POLL_SECONDS while nothing is new) and ends when the client
cancels, the server shuts down, the agency is suspended or its certificate revoked (checked at
every poll, with the status it would get at the start of a call). Followed datasets must be
visible to the caller when the watch opens, and their events keep coming only while they stay
visible (the catalog's rule, applied at every poll). The cursor is the event's position as
decimal text: it grants nothing (every read is filtered by the caller), and it stays valid
across restarts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from gateway.catalog import Catalog
from gateway.context import Call
from gateway.directory import Directory
from gateway.identity import Authenticator
from gateway.models import Event
from gateway.storage import Database
from gateway.storage import events as sql
from gateway.v1 import exchange_pb2
from govshare import errors, times

POLL_SECONDS = 0.2
BATCH = 100
MAX_FOLLOW = 100
MAX_CURSOR_DIGITS = 19
"""A position is a SQLite integer (below 2**63), so a longer cursor is none of ours; the bound
comes before int(), which refuses texts of over 4300 digits."""


class Events:
    """Watches of the events that concern an agency (see the module docstring)."""

    def __init__(self, db: Database, directory: Directory, authenticator: Authenticator,
                 catalog: Catalog, clock: Callable[[], datetime]):
        self._db = db
        self._directory = directory
        self._authenticator = authenticator
        self._catalog = catalog
        self._clock = clock
        """Read at every poll: a watch delivers the events visible then."""

    def watch(
        self, call: Call, cursor: str, follow: list[str]
    ) -> Iterator[exchange_pb2.WatchEventsResponse]:
        """Events after `cursor` (or from now on) for the caller, until the call ends."""
        agency = call.caller.identity.id
        self._check_follow(call, follow)
        reader = self._db.reader()
        after = _position(reader, cursor)
        ended = threading.Event()
        if not call.transport.add_callback(ended.set):
            return  # the call ended already: nothing would ever set `ended`
        while True:
            # A watch ends at once when its certificate is revoked or its agency suspended.
            self._authenticator.recheck(call.caller)
            self._directory.registered(call.caller)
            found = sql.events_for(reader, agency, follow, after=after, limit=BATCH,
                                   now=times.to_text(self._clock()))
            for row in found:
                yield exchange_pb2.WatchEventsResponse(event=event_proto(row))
                after = row.seq
            if len(found) < BATCH and ended.wait(POLL_SECONDS):
                return

    def _check_follow(self, call: Call, follow: list[str]) -> None:
        """Followed datasets must exist and be visible to the caller (the catalog's rule)."""
        if len(follow) > MAX_FOLLOW:
            raise errors.InvalidArgument(f"follow at most {MAX_FOLLOW} datasets", field="follow")
        for name in follow:
            call.resources = [name]
            self._catalog.get_visible(call, name, field="follow")


def event_proto(row: Event) -> exchange_pb2.Event:
    kind = "EVENT_TYPE_" + row.type.removeprefix("EVENT_TYPE_")
    return exchange_pb2.Event(
        cursor=str(row.seq), type=exchange_pb2.EventType.Value(kind),
        resource=row.resource, dataset=row.dataset, actor=row.actor,
        summary=row.summary, create_time=times.to_timestamp(row.create_time),
    )


def _position(reader: Any, cursor: str) -> int:
    """The position after which to deliver: the cursor's, or the newest event's."""
    last = sql.last_seq(reader)
    if not cursor:
        return last
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= MAX_CURSOR_DIGITS
            and int(cursor) <= last):
        raise errors.InvalidArgument(
            "cursor is not one this gateway gave out: pass the cursor of the last event"
            f" received (at most {MAX_CURSOR_DIGITS} digits), or none to watch from now on",
            reason="INVALID_CURSOR", field="cursor")
    return int(cursor)


