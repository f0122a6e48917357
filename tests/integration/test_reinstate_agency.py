"""DirectoryService.ReinstateAgency: an administrator lifts a suspension, audited, at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from agencies import errors
from gateway.storage import audit as audit_sql
from gateway.v1 import directory_pb2
from tests.support.exchange import assert_only_refusal, counts, publish


def _records(network) -> list[dict[str, Any]]:
    return [json.loads(r) for _, r in audit_sql.iter_records(network.gateway.db.reader())]


def _agencies(network) -> list[tuple]:
    return network.gateway.db.reader().execute("SELECT * FROM agencies ORDER BY id").fetchall()


def _refused(network, call: Callable[[], Any], code: grpc.StatusCode,
             reason: str) -> errors.GovshareError:
    """Run `call`, expect the refusal, and check it changed nothing but its audit event."""
    before, agencies = counts(network), _agencies(network)
    with pytest.raises(errors.GovshareError) as caught:
        call()
    assert (caught.value.code, caught.value.reason) == (code, reason), caught.value
    assert_only_refusal(network, before, "directory.reinstate", reason)
    assert _agencies(network) == agencies
    return caught.value


def test_a_reinstated_agency_reads_and_writes_again(network):
    admin, market = network.admin(), network.agency("sz-market")
    assert list(market.agencies())  # the gateway now caches sz-market as active
    admin.suspend_agency("sz-market", "certificate compromised")
    for call in (lambda: list(market.agencies()), lambda: publish(market, "inspections")):
        with pytest.raises(errors.PermissionDenied) as refused:
            call()
        assert refused.value.reason == "AGENCY_SUSPENDED"

    agency = admin.reinstate_agency("sz-market", "certificate replaced, inquiry closed")

    assert agency.name == "agencies/sz-market"
    assert (agency.state, agency.suspend_reason) == (directory_pb2.AGENCY_STATE_ACTIVE, "")
    assert market.agency("gd-health").name == "agencies/gd-health"  # a read, served at once
    dataset = publish(market, "inspections")  # and a write
    assert market.get(dataset).name == dataset
    changes = [r for r in _records(network)
               if r["action"] in ("directory.suspend", "directory.reinstate")]
    assert [(r["actor"], r["action"], r["outcome"], r["resources"]) for r in changes] == [
        (admin.identity.uri, "directory.suspend", "ALLOWED", ["agencies/sz-market"]),
        (admin.identity.uri, "directory.reinstate", "ALLOWED", ["agencies/sz-market"]),
    ]
    assert "inquiry closed" in json.dumps(changes[1])


def test_reinstating_an_agency_that_is_not_suspended(network):
    admin = network.admin()
    refusal = _refused(network, lambda: admin.reinstate_agency("zj-stats", "inquiry closed"),
                       grpc.StatusCode.FAILED_PRECONDITION, "AGENCY_NOT_SUSPENDED")
    assert "zj-stats is ACTIVE, not SUSPENDED" in refusal.message
    assert _records(network)[-1]["actor"] == admin.identity.uri


def test_reinstating_an_unknown_agency(network):
    admin = network.admin()
    refusal = _refused(network, lambda: admin.reinstate_agency("hb-health", "inquiry closed"),
                       grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert "hb-health is not registered" in refusal.message


def test_an_agency_may_not_reinstate(network):
    network.admin().suspend_agency("sz-market", "under investigation")
    health = network.agency("gd-health")
    request = directory_pb2.ReinstateAgencyRequest(name="agencies/sz-market", reason="my friend")
    _refused(network, lambda: health._call(health.directory.ReinstateAgency, request),
             grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    assert _records(network)[-1]["actor"] == health.identity.uri
    assert network.admin().agency("sz-market").state == directory_pb2.AGENCY_STATE_SUSPENDED


@pytest.mark.parametrize(("reason", "says"), [
    ("", "reason is required"), ("  \t ", "reason is required"),
    ("x" * 501, "too long: shorten it to at most 500"),
    ("cleared\0", "must not contain NUL"),
], ids=["missing", "blank", "too-long", "nul"])
def test_the_reason_is_required_and_bounded(network, reason, says):
    admin = network.admin()
    admin.suspend_agency("sz-market", "under investigation")
    refusal = _refused(network, lambda: admin.reinstate_agency("sz-market", reason),
                       grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert refusal.metadata["field"] == "reason"
    assert says in refusal.message
