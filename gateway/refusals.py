"""Refusals at the door, audited one by one up to a budget per caller and summarised beyond it.

A call refused before it is admitted (a revoked or unknown certificate, a role not allowed, an
agency not registered or suspended, a rate above the caller's limit) costs the caller nothing,
so without a bound one stolen certificate could grow the audit log by thousands of leaves a
second for as long as it liked: the rate limiter would refuse the calls, and each refusal would
be a leaf. Admitted calls need no such bound: the rate limiter already bounds them.

Each caller (by the identity of its certificate) has a token bucket of refusals audited one by
one. Beyond it, refusals are counted per caller, action and reason, and every
`[limits] refusal_summary_seconds` one REFUSED event per count records how many there were and
between which times, under the action and reason they had: nothing refused goes unrecorded
(short of a crash before the next summary); only the request digests of the counted ones are
not kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gateway.periodic import Periodic
from govshare import errors
from govshare.transparency import record

log = logging.getLogger(__name__)


MAX_SUMMARY_NAMES = 16
"""Names a summary keeps of those its refusals carried (a flood may name thousands)."""


@dataclass
class _Count:
    agencies: tuple[str, ...]
    refusals: int
    first: str
    last: str
    names: dict[str, None] = field(default_factory=dict)
    """The first MAX_SUMMARY_NAMES distinct resource names, in order (an ordered set)."""
    unlisted: bool = False
    """Whether the refusals named more than those."""

    def add(self, event: record.Event) -> None:
        self.refusals += 1
        self.last = event.time
        self._name(event.resources)

    def merge(self, other: _Count) -> None:
        """Take in `other`, counted earlier (a summary that could not be written)."""
        self.refusals += other.refusals
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)
        self.unlisted |= other.unlisted
        self._name(other.names)

    def _name(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.names:
                continue
            if len(self.names) < MAX_SUMMARY_NAMES:
                self.names[name] = None
            else:
                self.unlisted = True


Counts = dict[tuple[str, str, str], _Count]
"""Counted refusals by caller, action and reason code."""


class RefusalBudget:
    """Decides which door refusals are audited one by one, and counts the others (and any
    refusal the audit log could not take) for summaries."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._counts: Counts = {}
        self._lock = threading.Lock()

    def admit(self, event: record.Event, code: str) -> bool:
        """True when `event` (a refusal whose reason code is `code`) is to be audited itself;
        otherwise it is counted for the next summary."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(event.actor, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            admitted = tokens >= 1.0
            self._buckets[event.actor] = (tokens - 1.0 if admitted else tokens, now)
            if not admitted:
                self._count(event, code)
            return admitted

    def count(self, event: record.Event, code: str) -> None:
        """Count a refusal the audit log could not take, for the next summary."""
        with self._lock:
            self._count(event, code)

    def _count(self, event: record.Event, code: str) -> None:
        key = (event.actor, event.action, code)
        self._counts.setdefault(key, _Count(event.agencies, 0, event.time, "")).add(event)

    def take(self) -> Counts:
        """What was counted since the last call; callers whose buckets are full again are
        forgotten (a new bucket starts full)."""
        with self._lock:
            counts, self._counts = self._counts, {}
            now = self._clock()
            self._buckets = {
                actor: (tokens, last) for actor, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate < self.burst
            }
        return counts

    def restore(self, counts: Counts) -> None:
        """Put back counts whose summaries could not be written, to be written later."""
        with self._lock:
            for key, count in counts.items():
                if key in self._counts:
                    self._counts[key].merge(count)
                else:
                    self._counts[key] = count


def audit(budget: RefusalBudget, append: Callable[[list[record.Event]], object],
          event: record.Event, code: str, *, within_budget: bool = True) -> None:
    """Append the refusal `event` (reason code `code`): when `within_budget`, only if `budget`
    admits it, else it is counted for the next summary; counted too when the log cannot take
    it (a full disk, say), so that it is summarised later."""
    if within_budget and not budget.admit(event, code):
        return
    try:
        append([event])
    except errors.GatewayError as failure:
        budget.count(event, code)
        log.error("could not audit refusal of %s (counted for a summary): %s", event.action,
                  failure.message)


def summaries(counts: Counts) -> list[record.Event]:
    """One REFUSED event per caller, action and reason code counted."""
    return [_summary(actor, action, code, count)
            for (actor, action, code), count in counts.items()]


def _summary(actor: str, action: str, code: str, count: _Count) -> record.Event:
    """The REFUSED event standing for `count`: the names it carried (so the agencies and
    datasets they concern see it), how many refusals, and between which times."""
    more = " (and other names not listed)" if count.unlisted else ""
    return record.Event(
        actor=actor, action=action, outcome=record.REFUSED, agencies=count.agencies,
        resources=tuple(count.names),
        reason=(f"{code}: {count.refusals} more refusals like this from {count.first} to"
                f" {count.last}{more}, counted and not recorded one by one (over the caller's"
                " budget of audited refusals, or while the audit log could not be written)"),
    )


class SummaryWriter:
    """A thread appending the budget's summaries to the audit log every `seconds`, and once
    more when stopped."""

    def __init__(self, budget: RefusalBudget, append: Callable[[list[record.Event]], object],
                 seconds: float):
        self._budget = budget
        self._append = append
        self._rounds = Periodic("refusal-summaries", seconds, self._write, last_round=True)

    def start(self) -> None:
        self._rounds.start()

    def stop(self) -> None:
        """Write what is counted and end the thread (before the audit log closes)."""
        self._rounds.stop()

    def _write(self) -> None:
        counts = self._budget.take()
        if not counts:
            return
        try:
            self._append(summaries(counts))
        except Exception:  # a thread of its own: keep the counts, and the thread, alive
            self._budget.restore(counts)  # written once the log takes them again
            log.exception("could not audit %d summaries of refusals (kept for later)",
                          len(counts))
