"""The sharing rules and the working-day calendar, with time as a parameter."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gateway import config as config_module
from gateway import policy
from gateway.config import ExchangeConfig
from gateway.models import Dataset
from gateway.v1 import exchange_pb2

CONFIG = ExchangeConfig(max_grant_days=365, decision_working_days=10)
FRIDAY = datetime(2024, 5, 10, 15, 30, tzinfo=UTC)


def dataset(sharing_type: str = "UNCONDITIONAL", state: str = "ACTIVE") -> Dataset:
    return Dataset(name="agencies/gd-health/datasets/beds", publisher="gd-health",
                   region_code="440000", latest_version=1, state=state, withdraw_reason="",
                   classification="INTERNAL", sharing_type=sharing_type, title="beds",
                   abstract="", tags="", field_names="", create_time="", update_time="")


def statement(days: int = 30, fields: tuple[str, ...] = ()) -> exchange_pb2.AccessRequestStatement:
    message = exchange_pb2.AccessRequestStatement(fields=fields)
    message.duration.FromTimedelta(timedelta(days=days))
    return message


def test_unconditional_is_granted_now():
    decision = policy.decide(dataset(), statement(30), CONFIG, FRIDAY)
    assert decision.outcome == policy.GRANT_NOW
    assert decision.duration == timedelta(days=30)
    assert decision.decide_deadline is None
    assert decision.reason == ("agencies/gd-health/datasets/beds is shared unconditionally:"
                               " access to every field is granted at once for 30 days")


def test_an_unconditional_grant_covers_the_fields_asked_for_and_says_so():
    decision = policy.decide(dataset(), statement(30, ("region", "beds")), CONFIG, FRIDAY)
    assert decision.outcome == policy.GRANT_NOW
    assert "access to the fields region, beds is granted at once" in decision.reason
    assert "whole" not in decision.reason


def test_a_dataset_the_requester_may_not_see_waits_for_its_owner_with_a_neutral_reason():
    # It takes the name, not the row: the answer cannot depend on the dataset's terms, or on
    # whether it exists.
    decision = policy.decide_unseen("agencies/gd-health/datasets/beds", "agencies/gd-health",
                                    statement(), CONFIG, FRIDAY)
    assert decision.outcome == policy.WAIT_FOR_OWNER
    assert decision.decide_deadline == datetime(2024, 5, 24, 16, 0, tzinfo=UTC)
    assert decision.reason == (
        "the owner of agencies/gd-health decides whether to share"
        " agencies/gd-health/datasets/beds with you, by 2024-05-24T16:00:00.000000Z")


def test_a_dataset_the_requester_may_not_see_still_caps_the_duration_and_says_so():
    decision = policy.decide_unseen("agencies/gd-health/datasets/beds", "agencies/gd-health",
                                    statement(1000), CONFIG, FRIDAY)
    assert decision.duration == timedelta(days=365)
    assert decision.reason.endswith("(the 1000-day request is capped at 365 days)")


def test_conditional_waits_ten_working_days():
    decision = policy.decide(dataset("CONDITIONAL"), statement(), CONFIG, FRIDAY)
    assert decision.outcome == policy.WAIT_FOR_OWNER
    # 23:30 on Friday in Beijing: until the end of Friday 24 May, Beijing time
    assert decision.decide_deadline == datetime(2024, 5, 24, 16, 0, tzinfo=UTC)
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


def cst(day: str, hour: int = 10) -> datetime:
    """`hour` o'clock on `day` in Beijing (UTC+8), as a UTC datetime."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(hours=hour - 8)


def deadline(requested: datetime, days: int, **calendar) -> datetime:
    return policy.decide_deadline(
        requested, ExchangeConfig(decision_working_days=days, **calendar))


# National Day 2026 as the State Council set it: 1-7 October off, Sunday 20 September and
# Saturday 10 October worked.
NATIONAL_DAY = {"holidays": tuple(date(2026, 10, day) for day in range(1, 8)),
                "extra_working_days": (date(2026, 9, 20), date(2026, 10, 10))}


@pytest.mark.parametrize(("requested", "days", "last_day"), [
    (cst("2024-05-10"), 1, "2024-05-13"),  # Friday -> Monday
    (cst("2024-05-11"), 1, "2024-05-13"),  # Saturday -> Monday
    (cst("2024-05-13"), 5, "2024-05-20"),  # a week
    (cst("2024-05-13"), 0, "2024-05-13"),  # the day itself
    (cst("2024-05-10", 23), 10, "2024-05-24"),  # two weeks, whatever the hour
])
def test_the_deadline_is_the_end_of_the_last_working_day_in_beijing(requested, days, last_day):
    assert deadline(requested, days) == cst(last_day, 24)


def test_days_are_counted_in_the_network_time_zone():
    sunday_evening_utc = datetime(2024, 5, 12, 20, 0, tzinfo=UTC)  # Monday 04:00 in Beijing
    assert deadline(sunday_evening_utc, 1) == cst("2024-05-14", 24)  # Tuesday, not Monday
    assert deadline(sunday_evening_utc, 1, timezone="UTC") == datetime(2024, 5, 14, tzinfo=UTC)
    thursday_late = cst("2024-05-09", 23)  # 15:00 UTC: still Thursday in Beijing
    assert deadline(thursday_late, 1) == cst("2024-05-10", 24)


def test_holidays_are_skipped_and_make_up_weekend_days_count():
    before = cst("2026-09-30")  # Wednesday, the eve of National Day
    assert deadline(before, 10) == cst("2026-10-14", 24)  # no holidays configured
    # 8, 9, 10 (Saturday, worked), 12 to 16, 19, 20 October
    assert deadline(before, 10, **NATIONAL_DAY) == cst("2026-10-20", 24)
    assert deadline(before, 1, **NATIONAL_DAY) == cst("2026-10-08", 24)
    assert deadline(cst("2026-09-19"), 1, **NATIONAL_DAY) == cst("2026-09-20", 24)  # Sunday
    assert deadline(cst("2026-10-02"), 3, **NATIONAL_DAY) == cst("2026-10-10", 24)


def test_the_calendar_loads_from_toml_and_renders_back(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('[exchange]\ntimezone = "Asia/Urumqi"\nholidays = [2026-10-01, "2026-10-02"]\n'
                    "extra_working_days = [2026-10-10]\n")
    loaded = config_module.load(path).exchange
    assert (loaded.timezone, loaded.holidays, loaded.extra_working_days) == (
        "Asia/Urumqi", (date(2026, 10, 1), date(2026, 10, 2)), (date(2026, 10, 10),))
    path.write_text(config_module.render(config_module.load(path)))
    assert config_module.load(path).exchange == loaded
    assert ExchangeConfig().timezone == "Asia/Shanghai"


@pytest.mark.parametrize(("text", "problem"), [
    ('timezone = "Beijing"', "[exchange] timezone must be an IANA time zone name"),
    ('timezone = "Asia"', "[exchange] timezone must be an IANA time zone name"),
    ('holidays = "2026-10-01"', "[exchange] holidays must be a list of dates"),
    ('holidays = ["2026-10-32"]', "[exchange] holidays must be a list of dates"),
    ("holidays = [2026-10-01T00:00:00]", "[exchange] holidays must be a list of dates"),
    ("extra_working_days = [1]", "[exchange] extra_working_days must be a list of dates"),
    ("extra_working_days = [2026-10-09]",
     "[exchange] extra_working_days must be Saturdays or Sundays"),
    ("holidays = [2026-10-10]\nextra_working_days = [2026-10-10]",
     "[exchange] holidays and extra_working_days both list 2026-10-10"),
])
def test_a_wrong_calendar_is_refused_naming_its_key(tmp_path, text, problem):
    path = tmp_path / "gateway.toml"
    path.write_text(f"[exchange]\n{text}\n")
    with pytest.raises(ValueError) as refused:
        config_module.load(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert problem in str(refused.value)
