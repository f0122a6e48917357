"""The sharing rules: the one place that decides what happens to an access request, and why.

`decide` answers with an outcome and a reason a person can read; callers never re-derive the
rules. Time is a parameter. Working days are Monday to Friday: public holidays (and the
working weekends China swaps in around them) are not modelled, so a deadline may fall on a
holiday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.config import ExchangeConfig

GRANT_NOW = "GRANT_NOW"
WAIT_FOR_OWNER = "WAIT_FOR_OWNER"
REFUSE = "REFUSE"

UNCONDITIONAL = "UNCONDITIONAL"
CONDITIONAL = "CONDITIONAL"
NOT_SHARED = "NOT_SHARED"


@dataclass(frozen=True)
class PolicyDecision:
    """What the rules say about one request."""

    outcome: str
    """GRANT_NOW, WAIT_FOR_OWNER or REFUSE."""
    reason: str
    """Why, in words for the people on both sides."""
    duration: timedelta
    """The access duration the grant would give (the requested one, capped)."""
    decide_deadline: datetime | None = None
    """For WAIT_FOR_OWNER: when the owner must decide by."""
    refusal: str = ""
    """For REFUSE: the UPPER_SNAKE error reason."""


def sharing_type(dataset: dict[str, Any]) -> str:
    """The dataset's sharing type without its enum prefix, whichever form the catalog stores."""
    return str(dataset["sharing_type"]).removeprefix("SHARING_TYPE_")


def cap_duration(requested: timedelta, config: ExchangeConfig) -> timedelta:
    """The requested duration, at most config.max_grant_days."""
    return min(requested, timedelta(days=config.max_grant_days))


def add_working_days(start: datetime, days: int) -> datetime:
    """`start` moved forward by `days` working days (Mon-Fri), keeping the time of day."""
    moment = start
    while days > 0:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            days -= 1
    return moment


def decide(
    dataset: dict[str, Any], statement: Any, config: ExchangeConfig, now: datetime
) -> PolicyDecision:
    """The rules for a new AccessRequestStatement on `dataset` (its catalog row)."""
    requested = statement.duration.ToTimedelta()
    duration = cap_duration(requested, config)
    capped = (f" (the {requested.days}-day request is capped at {config.max_grant_days} days)"
              if duration < requested else "")
    if dataset["state"] == "WITHDRAWN":
        return PolicyDecision(
            REFUSE, f"{dataset['name']} was withdrawn by its owner and takes no new requests",
            duration, refusal="DATASET_WITHDRAWN",
        )
    kind = sharing_type(dataset)
    if kind == UNCONDITIONAL:
        return PolicyDecision(
            GRANT_NOW,
            f"{dataset['name']} is shared unconditionally: access is granted at once"
            f" for {duration.days} days{capped}",
            duration,
        )
    if kind == CONDITIONAL:
        deadline = add_working_days(now, config.decision_working_days)
        return PolicyDecision(
            WAIT_FOR_OWNER,
            f"{dataset['name']} is shared on conditions: its owner decides within"
            f" {config.decision_working_days} working days{capped}",
            duration, decide_deadline=deadline,
        )
    return PolicyDecision(
        REFUSE, f"{dataset['name']} is not shared: its owner's legal basis forbids exchanging it",
        duration, refusal="DATASET_NOT_SHARED",
    )
