"""Caller limits: a token bucket for request rate, counters for concurrent streams (per caller
and gateway-wide: each stream holds a server thread for its whole life)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from govshare import errors


class Limiter:
    """Admits requests per caller at `rate` per second with bursts up to `burst`, and at most
    `max_streams` concurrent streaming calls per caller and `max_total_streams` in all, so that
    streams always leave server threads for unary calls."""

    def __init__(
        self,
        rate: float,
        burst: int,
        max_streams: int,
        max_total_streams: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.rate = rate
        self.burst = burst
        self.max_streams = max_streams
        self.max_total_streams = max_total_streams
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._streams: dict[str, int] = {}
        self._total_streams = 0
        self._lock = threading.Lock()

    def admit(self, caller: str) -> None:
        """Take one token for `caller`, or raise ResourceExhausted."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                raise errors.ResourceExhausted(
                    f"request rate above {self.rate:g}/s; slow down and retry",
                    reason="RATE_LIMITED",
                    limit_per_second=self.rate,
                )
            self._buckets[caller] = (tokens - 1.0, now)

    def streams(self, caller: str) -> int:
        """How many stream slots `caller` holds now."""
        with self._lock:
            return self._streams.get(caller, 0)

    @contextmanager
    def stream(self, caller: str) -> Iterator[None]:
        """Hold one of the caller's concurrent stream slots for the duration of a stream."""
        with self._lock:
            held = self._streams.get(caller, 0)
            if held >= self.max_streams:
                raise errors.ResourceExhausted(
                    f"at most {self.max_streams} concurrent streams per caller;"
                    " wait for one to end",
                    reason="TOO_MANY_STREAMS",
                    limit=self.max_streams,
                )
            if self._total_streams >= self.max_total_streams:
                raise errors.ResourceExhausted(
                    f"the gateway is serving its maximum of {self.max_total_streams} concurrent"
                    " streams; retry later",
                    reason="GATEWAY_STREAMS_EXHAUSTED",
                    limit=self.max_total_streams,
                )
            self._streams[caller] = held + 1
            self._total_streams += 1
        try:
            yield
        finally:
            with self._lock:
                self._streams[caller] -= 1
                self._total_streams -= 1
