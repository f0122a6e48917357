"""Time in one convention: aware UTC datetimes, stored as fixed-width RFC 3339 text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from govshare import errors

MAX_DURATION_SECONDS = 315_576_000_000
"""The protobuf Duration range: about 10,000 years either way."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    """The current time in UTC (the default clock; code that checks time takes `now` as input)."""
    return datetime.now(UTC)


def to_text(moment: datetime) -> str:
    """Fixed-width text that sorts in time order, for storage and audit records."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_text(text: str) -> datetime:
    """The datetime of a `to_text` string (fromisoformat: 50x faster than strptime)."""
    return datetime.fromisoformat(text)


def to_timestamp(moment: datetime | str | None) -> Timestamp | None:
    """A protobuf Timestamp (None stays None, so optional fields stay unset)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = from_text(moment)
    seconds = moment - _EPOCH
    return Timestamp(seconds=seconds.days * 86_400 + seconds.seconds,
                     nanos=seconds.microseconds * 1000)


def from_timestamp(stamp: Timestamp, field: str = "timestamp") -> datetime:
    """An aware UTC datetime from a protobuf Timestamp; INVALID_ARGUMENT naming `field` when
    it is not a valid Timestamp (years 1 to 9999, nanos 0 to 999,999,999)."""
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except ValueError as exc:
        raise errors.InvalidArgument(
            f"{field} must be a valid Timestamp: years 1 to 9999, nanos 0 to 999999999",
            field=field) from exc


def from_duration(duration: Duration, field: str) -> timedelta:
    """A timedelta from a protobuf Duration; INVALID_ARGUMENT naming `field` when it is out of
    the Duration range or its seconds and nanos have different signs."""
    if (abs(duration.seconds) > MAX_DURATION_SECONDS or abs(duration.nanos) > 999_999_999
            or duration.seconds * duration.nanos < 0):
        raise errors.InvalidArgument(
            f"{field} must be a valid Duration: at most {MAX_DURATION_SECONDS} seconds,"
            " with seconds and nanos of the same sign",
            field=field)
    return duration.ToTimedelta()
