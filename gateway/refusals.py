"""Refusals at the door, audited one by one up to a budget per caller and summarised beyond it.

A call refused before it is admitted (a revoked or unknown certificate, a role not allowed, an
agency not registered or suspended, a rate above the caller's limit) costs the caller nothing,
so without a bound one stolen certificate could grow the audit log by thousands of leaves a
second for as long as it liked: the rate limiter would refuse the calls, and each refusal would
be a leaf. Admitted calls need no such bound: the rate limiter already bounds them.

Each caller (by the identity of its certificate) has a token bucket of refusals audited one by
one. Beyond it, refusals are counted per caller, action and reason, and every
`[limits] refusal_summary_seconds` one REFUSED event per count records how many there were and
between which times, under the action and reason they had: nothing refused goes unrecorded,
only the request digests of the counted ones are not kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway import errors
from gateway.audit import record

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
    unnamed: int = 0
    """Distinct names beyond those."""

    def add(self, event: record.Event) -> None:
        self.refusals += 1
        self.last = event.time
        for name in event.resources:
            if name in self.names:
                continue
            if len(self.names) < MAX_SUMMARY_NAMES:
                self.names[name] = None
            else:
                self.unnamed += 1


class RefusalBudget:
    """Decides which door refusals are audited one by one, and summarises the others."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._counts: dict[tuple[str, str, str], _Count] = {}
        self._lock = threading.Lock()

    def admit(self, event: record.Event, code: str) -> bool:
        """True when `event` (a refusal whose reason code is `code`) is to be audited itself;
        otherwise it is counted for the next summary."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(event.actor, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[event.actor] = (tokens - 1.0, now)
                return True
            self._buckets[event.actor] = (tokens, now)
            key = (event.actor, event.action, code)
            count = self._counts.setdefault(key, _Count(event.agencies, 0, event.time, ""))
            count.add(event)
            return False

    def summaries(self) -> list[record.Event]:
        """One REFUSED event per caller, action and reason counted since the last call; callers
        whose buckets are full again are forgotten (a new bucket starts full)."""
        with self._lock:
            counts, self._counts = self._counts, {}
            now = self._clock()
            self._buckets = {
                actor: (tokens, last) for actor, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate < self.burst
            }
        return [_summary(actor, action, code, count)
                for (actor, action, code), count in counts.items()]


def _summary(actor: str, action: str, code: str, count: _Count) -> record.Event:
    """The REFUSED event standing for `count`: the names it carried (so the agencies and
    datasets they concern see it), how many refusals, and between which times."""
    more = f" (and {count.unnamed} more names)" if count.unnamed else ""
    return record.Event(
        actor=actor, action=action, outcome=record.REFUSED, agencies=count.agencies,
        resources=tuple(count.names),
        reason=(f"{code}: {count.refusals} more refusals like this from {count.first} to"
                f" {count.last}{more}, counted and not recorded one by one (the caller was"
                " over its budget of audited refusals)"),
    )


class SummaryWriter:
    """A thread appending the budget's summaries to the audit log every `seconds`, and once
    more when stopped."""

    def __init__(self, budget: RefusalBudget, append: Callable[[list[record.Event]], object],
                 seconds: float):
        self._budget = budget
        self._append = append
        self._seconds = seconds
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="refusal-summaries", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is counted and end the thread (before the audit log closes)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._seconds):
            self._write()
        self._write()

    def _write(self) -> None:
        events = self._budget.summaries()
        if not events:
            return
        try:
            self._append(events)
        except errors.GatewayError as failure:
            log.error("could not audit %d summaries of refusals: %s", len(events),
                      failure.message)
