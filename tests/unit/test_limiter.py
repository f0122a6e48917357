"""The limiter: a token bucket per caller, and stream slots per caller and gateway-wide."""

import pytest

from gateway.limits import Limiter
from govshare import errors


def test_token_bucket_refuses_above_rate_and_refills():
    now = [0.0]
    limiter = Limiter(rate=2, burst=3, max_streams=1, max_total_streams=1, clock=lambda: now[0])
    for _ in range(3):
        limiter.admit("a")
    with pytest.raises(errors.ResourceExhausted) as refused:
        limiter.admit("a")
    assert refused.value.reason == "RATE_LIMITED"
    limiter.admit("b")  # buckets are per caller
    now[0] += 0.5
    limiter.admit("a")


def test_stream_slots_are_per_caller_and_released():
    limiter = Limiter(rate=1, burst=1, max_streams=1, max_total_streams=2)
    with limiter.stream("a"):
        with pytest.raises(errors.ResourceExhausted), limiter.stream("a"):
            pass
        with limiter.stream("b"):
            pass
    with limiter.stream("a"):
        pass


def test_stream_slots_are_capped_gateway_wide_and_released():
    limiter = Limiter(rate=1, burst=1, max_streams=1, max_total_streams=2)
    with limiter.stream("a"), limiter.stream("b"):
        with pytest.raises(errors.ResourceExhausted) as refused, limiter.stream("c"):
            pass
        assert refused.value.reason == "GATEWAY_STREAMS_EXHAUSTED"
    with limiter.stream("c"):
        pass
