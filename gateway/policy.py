"""The sharing rules: the one place that decides what happens to an access request, and why.

`decide` (a dataset the requester may see) and `decide_unseen` (one it may not see, or that does
not exist) answer with an outcome and a reason a person can read; callers never re-derive the
rules. Time is a parameter. Working days follow the network's calendar ([exchange] timezone,
holidays and extra_working_days): see `decide_deadline`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.config import ExchangeConfig
from gateway.models import Dataset, Grant, Version
from govshare import times

GRANT_NOW = "GRANT_NOW"
WAIT_FOR_OWNER = "WAIT_FOR_OWNER"
REFUSE = "REFUSE"

UNCONDITIONAL = "UNCONDITIONAL"
CONDITIONAL = "CONDITIONAL"


@dataclass(frozen=True)
class PolicyDecision:
    """What the rules say about one request."""

    outcome: str
    """GRANT_NOW (a grant now, on the fields the request names), WAIT_FOR_OWNER or REFUSE."""
    reason: str
    """Why, in words for the people on both sides."""
    duration: timedelta
    """The access duration the grant would give (the requested one, capped)."""
    decide_deadline: datetime | None = None
    """For WAIT_FOR_OWNER: when the owner must decide by."""
    refusal: str = ""
    """For REFUSE: the UPPER_SNAKE error reason."""


def sharing_type(dataset: Dataset | Version) -> str:
    """The dataset's sharing type without its enum prefix, whichever form the catalog stores."""
    return str(dataset.sharing_type).removeprefix("SHARING_TYPE_")


def cap_duration(requested: timedelta, config: ExchangeConfig) -> timedelta:
    """The requested duration, at most config.max_grant_days."""
    return min(requested, timedelta(days=config.max_grant_days))


def decide_deadline(requested: datetime, config: ExchangeConfig) -> datetime:
    """When the owner must decide on a request made at `requested`: the end (midnight, local
    time) of the config.decision_working_days-th working day after the request's local date,
    as an aware UTC datetime.

    Days are calendar days in config.timezone (China Standard Time by default), not in UTC: a
    request at 20:00 UTC on a Friday is made on Saturday in Beijing. A working day is Monday to
    Friday unless listed in config.holidays, or a weekend day listed in
    config.extra_working_days (the weekends China works around its statutory holidays).
    "Within 10 working days" is read as a person (and the law counting a period) reads it:
    counting starts the day after the request, and the owner has the whole of the last day,
    whatever the time of day the request came in.
    """
    zone = ZoneInfo(config.timezone)
    day = requested.astimezone(zone).date()
    left = config.decision_working_days
    while left > 0:
        day += timedelta(days=1)
        if (day.weekday() < 5 and day not in config.holidays) or \
                day in config.extra_working_days:
            left -= 1
    return datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)


def refusal(dataset: Dataset, terms: Dataset | Version,
            duration: timedelta) -> PolicyDecision | None:
    """REFUSE when `dataset` is exchanged with nobody (withdrawn, or its latest version
    NOT_SHARED: the owner's current decision governs every version) or the version asked for
    (`terms`, a version row or `dataset` itself for the latest) is NOT_SHARED; None otherwise.
    Both asking and approving answer to the terms at that moment."""
    if dataset.state == "WITHDRAWN":
        return PolicyDecision(
            REFUSE, f"{dataset.name} was withdrawn by its owner and is no longer exchanged",
            duration, refusal="DATASET_WITHDRAWN",
        )
    for row in (dataset, terms):
        if sharing_type(row) not in (UNCONDITIONAL, CONDITIONAL):  # NOT_SHARED, or unknown
            return PolicyDecision(
                REFUSE,
                f"{row.name} is not shared: its owner's legal basis forbids exchanging it",
                duration, refusal="DATASET_NOT_SHARED",
            )
    return None


def decide(
    dataset: Dataset, statement: Any, config: ExchangeConfig, now: datetime,
    terms: Dataset | Version | None = None,
) -> PolicyDecision:
    """The rules for a new AccessRequestStatement on `dataset` (its catalog row) under the
    terms of the version it asks for (`terms`: that version's row; None: the latest), which
    the requester may see: that version's sharing type decides.

    A GRANT_NOW grant covers the fields the statement names, or every field when it names
    none: data minimisation holds for automatic grants as for the owner's.
    """
    requested = statement.duration.ToTimedelta()
    duration = cap_duration(requested, config)
    terms = terms or dataset
    refused = refusal(dataset, terms, duration)
    if refused is not None:
        return refused
    capped = _capped(requested, duration, config)
    if sharing_type(terms) == UNCONDITIONAL:
        covered = (f"the fields {', '.join(statement.fields)}" if statement.fields
                   else "every field")
        return PolicyDecision(
            GRANT_NOW, f"{terms.name} is shared unconditionally: access to {covered} is"
            f" granted at once for {duration.days} days{capped}", duration,
        )
    return PolicyDecision(
        WAIT_FOR_OWNER,
        f"{terms.name} is shared on conditions: its owner decides within"
        f" {config.decision_working_days} working days{capped}",
        duration, decide_deadline=decide_deadline(now, config),
    )


def decide_unseen(
    dataset: str, owner: str, statement: Any, config: ExchangeConfig, now: datetime,
) -> PolicyDecision:
    """The rules for a new AccessRequestStatement naming `dataset`, which the requester may not
    see (CONFIDENTIAL, whatever its sharing type or state) or which does not exist: the owner
    (`owner`, "agencies/{agency}") always decides, and the reason is the same in every case, so
    that the answer tells nothing of the dataset's existence or terms."""
    requested = statement.duration.ToTimedelta()
    duration = cap_duration(requested, config)
    deadline = decide_deadline(now, config)
    return PolicyDecision(
        WAIT_FOR_OWNER,
        f"the owner of {owner} decides whether to share {dataset} with you, by"
        f" {times.to_text(deadline)}{_capped(requested, duration, config)}",
        duration, decide_deadline=deadline,
    )


def _capped(requested: timedelta, duration: timedelta, config: ExchangeConfig) -> str:
    """What a reason adds when the requested duration was capped."""
    return (f" (the {requested.days}-day request is capped at {config.max_grant_days} days)"
            if duration < requested else "")


def decide_approval(
    dataset: Dataset, terms: Dataset | Version, requested: timedelta, config: ExchangeConfig
) -> PolicyDecision:
    """The rules for an owner approving a pending request on `dataset` now: the current terms
    of the dataset and of the version asked for (`terms`, as in `decide`) decide, not those
    they had when the request was made, and the requested duration is capped by the current
    configuration."""
    duration = cap_duration(requested, config)
    return refusal(dataset, terms, duration) or PolicyDecision(
        GRANT_NOW, "approved by the owner", duration)


CLASSIFICATIONS = ("PUBLIC", "INTERNAL", "CONFIDENTIAL")
"""Classifications, from the least strict to the most."""
SHARING_TYPES = (UNCONDITIONAL, CONDITIONAL, "NOT_SHARED")
"""Sharing types, from the least strict to the most."""


def covers(grant: Grant, terms: Dataset | Version) -> bool:
    """Whether `grant` (a grant row) opens what was published under `terms` (a version or
    dataset row): a grant carries the terms of the version its request named (the latest
    when it named none) when it was given, and opens no version whose classification or
    sharing type is stricter than those, so a version published later under looser terms
    never opens an older, stricter one."""
    return (_at_most(CLASSIFICATIONS, terms.classification, grant.max_classification)
            and _at_most(SHARING_TYPES, sharing_type(terms), grant.max_sharing_type))


def _at_most(order: tuple[str, ...], value: str, limit: str) -> bool:
    """Whether `value` is no stricter than `limit` in `order`; an unknown one never is."""
    return value in order and limit in order and order.index(value) <= order.index(limit)
