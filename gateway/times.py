"""Time in one convention: aware UTC datetimes, stored as fixed-width RFC 3339 text."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utcnow() -> datetime:
    """The current time in UTC (the default clock; code that checks time takes `now` as input)."""
    return datetime.now(UTC)


def to_text(moment: datetime) -> str:
    """Fixed-width text that sorts in time order, for storage and audit records."""
    return moment.astimezone(UTC).strftime(_FORMAT)


def from_text(text: str) -> datetime:
    """The datetime of a `to_text` string."""
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)


def to_timestamp(moment: datetime | str | None) -> Timestamp | None:
    """A protobuf Timestamp (None stays None, so optional fields stay unset)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = from_text(moment)
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def from_timestamp(stamp: Timestamp) -> datetime:
    """An aware UTC datetime from a protobuf Timestamp."""
    return stamp.ToDatetime(tzinfo=UTC)
