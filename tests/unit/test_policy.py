"""The sharing rules, with time as a parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway import policy
from gateway.config import ExchangeConfig
from gateway.v1 import exchange_pb2

CONFIG = ExchangeConfig(max_grant_days=365, decision_working_days=10)
FRIDAY = datetime(2024, 5, 10, 15, 30, tzinfo=UTC)


def dataset(sharing_type: str = "UNCONDITIONAL", state: str = "ACTIVE") -> dict:
    return {"name": "agencies/gd-health/datasets/beds", "sharing_type": sharing_type,
            "state": state}


def statement(days: int = 30) -> exchange_pb2.AccessRequestStatement:
    message = exchange_pb2.AccessRequestStatement()
    message.duration.FromTimedelta(timedelta(days=days))
    return message


def test_unconditional_is_granted_now():
    decision = policy.decide(dataset(), statement(30), CONFIG, FRIDAY)
    assert decision.outcome == policy.GRANT_NOW
    assert decision.duration == timedelta(days=30)
    assert decision.decide_deadline is None
    assert "granted at once for 30 days" in decision.reason


def test_conditional_waits_ten_working_days():
    decision = policy.decide(dataset("CONDITIONAL"), statement(), CONFIG, FRIDAY)
    assert decision.outcome == policy.WAIT_FOR_OWNER
    assert decision.decide_deadline == datetime(2024, 5, 24, 15, 30, tzinfo=UTC)
    assert "10 working days" in decision.reason


def test_not_shared_is_refused():
    decision = policy.decide(dataset("NOT_SHARED"), statement(), CONFIG, FRIDAY)
    assert (decision.outcome, decision.refusal) == (policy.REFUSE, "DATASET_NOT_SHARED")


@pytest.mark.parametrize("kind", ["UNCONDITIONAL", "CONDITIONAL", "NOT_SHARED"])
def test_withdrawn_takes_no_requests(kind):
    decision = policy.decide(dataset(kind, "WITHDRAWN"), statement(), CONFIG, FRIDAY)
    assert (decision.outcome, decision.refusal) == (policy.REFUSE, "DATASET_WITHDRAWN")


def test_duration_is_capped_and_says_so():
    decision = policy.decide(dataset(), statement(1000), CONFIG, FRIDAY)
    assert decision.duration == timedelta(days=365)
    assert "capped at 365 days" in decision.reason


def test_enum_prefixed_sharing_type_is_understood():
    decision = policy.decide(dataset("SHARING_TYPE_CONDITIONAL"), statement(), CONFIG, FRIDAY)
    assert decision.outcome == policy.WAIT_FOR_OWNER


@pytest.mark.parametrize(("start", "days", "end"), [
    (datetime(2024, 5, 10, tzinfo=UTC), 1, datetime(2024, 5, 13, tzinfo=UTC)),  # Fri -> Mon
    (datetime(2024, 5, 11, tzinfo=UTC), 1, datetime(2024, 5, 13, tzinfo=UTC)),  # Sat -> Mon
    (datetime(2024, 5, 13, tzinfo=UTC), 5, datetime(2024, 5, 20, tzinfo=UTC)),  # a week
    (datetime(2024, 5, 13, tzinfo=UTC), 0, datetime(2024, 5, 13, tzinfo=UTC)),
])
def test_working_days_skip_weekends(start, days, end):
    assert policy.add_working_days(start, days) == end
