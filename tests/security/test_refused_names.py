"""A refused request may name anything, of any length: its audit event stays small enough for
every listing that shows it."""

from __future__ import annotations

import pytest

from agencies import errors
from gateway.context import MAX_RECORDED_NAME
from gateway.v1 import audit_pb2


def test_a_huge_name_in_a_refused_request_does_not_break_listings(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    huge = "agencies/gd-health/datasets/" + "a" * 450_000
    with pytest.raises(errors.InvalidArgument):
        market.get(huge)

    events = list(market.audit_events())  # the caller's own view
    refusal = next(e for e in events
                   if e.action == "catalog.get" and e.outcome == audit_pb2.OUTCOME_REFUSED)
    [name] = refusal.resources
    assert name.startswith("agencies/gd-health/datasets/aaa") and name.endswith("…")
    assert len(name.encode()) <= MAX_RECORDED_NAME
    assert "agencies/gd-health" in refusal.agencies
    assert len(refusal.record) < 2_000
    # Named no dataset of gd-health (the name is malformed): not an attempt on one it reads.
    assert refusal.leaf_index not in {e.leaf_index for e in health.audit_events()}
