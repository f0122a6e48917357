"""The directory, in-process: registration, suspension and reinstatement by administrators."""

from __future__ import annotations

import pytest

from agencies.sim.roster import AgencySpec
from gateway.network import add_agency
from govshare import errors

ADMIN_ACTIONS = ("directory.suspend", "directory.reinstate")


def test_a_registered_agency_is_active_and_registers_once(domain):
    add_agency(domain.layout, AgencySpec("hz-transport", "Hangzhou Transport Bureau", "330100"))
    row = domain.register("hz-transport", "Hangzhou Transport Bureau", "330100")
    assert (row.state, row.region_code) == ("ACTIVE", "330100")
    assert domain.call("hz-transport", "directory.get").agency.id == "hz-transport"
    with pytest.raises(errors.AlreadyExists):
        domain.register("hz-transport", "Hangzhou Transport Bureau", "330100")
    assert [outcome for outcome, _ in domain.leaves("directory.register")][-2:] == \
        ["ALLOWED", "REFUSED"]


def test_a_signing_certificate_of_another_agency_is_refused(domain):
    pem = (domain.layout.certs("sz-market") / "signing.pem").read_text()
    call = domain.call("admin", "directory.register")
    with pytest.raises(errors.InvalidArgument) as refused:
        domain.gateway.directory.register(call, "hz-transport", "Hangzhou", "330100", pem)
    assert refused.value.reason == "CERTIFICATE_IDENTITY_MISMATCH"


def test_a_suspended_agency_is_refused_until_reinstated(domain):
    suspend, reinstate = (domain.call("admin", action) for action in ADMIN_ACTIONS)
    domain.gateway.directory.suspend(suspend, "agencies/sz-market", "audit pending")
    with pytest.raises(errors.PermissionDenied) as refused:
        domain.call("sz-market", "catalog.list")
    assert refused.value.reason == "AGENCY_SUSPENDED"
    assert "audit pending" in refused.value.message
    domain.gateway.directory.reinstate(reinstate, "agencies/sz-market", "audit passed")
    assert domain.call("sz-market", "catalog.list").agency.state == "ACTIVE"
    with pytest.raises(errors.FailedPrecondition) as again:
        domain.gateway.directory.reinstate(reinstate, "agencies/sz-market", "audit passed")
    assert again.value.reason == "AGENCY_NOT_SUSPENDED"


def test_no_grant_is_given_to_a_suspended_requester(domain):
    dataset = domain.publish("gd-health", "beds", sharing_type="CONDITIONAL").dataset
    request = domain.ask("sz-market", dataset).request.name
    domain.gateway.directory.suspend(domain.call("admin", "directory.suspend"),
                      "agencies/sz-market", "audit pending")
    with pytest.raises(errors.FailedPrecondition) as refused:
        domain.decide("gd-health", request)
    assert refused.value.reason == "REQUESTER_SUSPENDED"
