"""Stored times are fixed-width text that sorts in time order and round-trips exactly."""

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from govshare import times

moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                       timezones=st.just(UTC))


@given(moments)
def test_text_round_trips_and_is_fixed_width(moment):
    text = times.to_text(moment)
    assert len(text) == 27
    assert times.from_text(text) == moment


@given(moments, moments)
def test_text_sorts_in_time_order(a, b):
    assert (times.to_text(a) < times.to_text(b)) == (a < b)


@given(moments)
def test_timestamps_match_protobuf(moment):
    expected = Timestamp()
    expected.FromDatetime(moment)
    assert times.to_timestamp(moment) == expected
    assert times.to_timestamp(times.to_text(moment)) == expected
    assert times.from_timestamp(expected) == moment


def test_other_zones_are_stored_as_utc():
    moment = datetime(2026, 11, 29, 4, 0, tzinfo=timezone(timedelta(hours=8)))  # Beijing
    assert times.to_text(moment) == "2026-11-28T20:00:00.000000Z"
    assert times.to_timestamp(None) is None
