"""WatchEvents, in-process: which events an agency is shown (a watch whose client hangs up as
soon as it started delivers what is there, then ends)."""

from __future__ import annotations

import pytest

from govshare import errors
from tests.support.domain import LocalTransport

OWNER, REQUESTER = "gd-health", "sz-market"


def test_the_owner_is_told_of_a_request_and_the_requester_of_its_decision(domain):
    dataset = domain.publish(OWNER, "beds", sharing_type="CONDITIONAL").dataset
    request = domain.ask(REQUESTER, dataset).request.name
    domain.decide(OWNER, request)
    assert domain.watch(OWNER) == [
        ("EVENT_TYPE_DATASET_VERSION_PUBLISHED", f"{dataset}/versions/1"),
        ("EVENT_TYPE_ACCESS_REQUEST_CREATED", request)]
    assert domain.watch(REQUESTER) == [("EVENT_TYPE_ACCESS_REQUEST_APPROVED", request)]
    assert domain.watch("zj-stats") == []


def test_a_grantee_is_shown_new_versions_it_may_see_only(domain):
    dataset = domain.publish(OWNER, "beds").dataset
    domain.ask(REQUESTER, dataset)
    domain.publish(OWNER, "beds", version=2)
    domain.publish(OWNER, "beds", version=3, classification="CONFIDENTIAL")
    assert domain.watch(REQUESTER) == [
        ("EVENT_TYPE_DATASET_VERSION_PUBLISHED", f"{dataset}/versions/2")]


def test_only_datasets_the_caller_may_see_are_followed(domain):
    shown = domain.publish(OWNER, "beds").dataset
    hidden = domain.publish(OWNER, "secret", classification="CONFIDENTIAL").dataset
    assert domain.watch("zj-stats", follow=(shown,)) == [
        ("EVENT_TYPE_DATASET_VERSION_PUBLISHED", f"{shown}/versions/1")]
    for name in (hidden, "agencies/gd-health/datasets/never-published"):
        with pytest.raises(errors.PermissionDenied) as refused:
            domain.watch("zj-stats", follow=(name,))
        assert refused.value.reason == "DATASET_NOT_VISIBLE"


def test_a_cursor_not_given_out_is_refused(domain):
    with pytest.raises(errors.InvalidArgument) as refused:
        domain.watch(OWNER, cursor="99")
    assert refused.value.reason == "INVALID_CURSOR"


def test_a_watch_checks_its_agency_at_every_poll(domain):
    call = domain.call(OWNER, "exchange.watch", LocalTransport())
    watching = domain.gateway.events.watch(call, "0", [])  # begins at the first poll
    domain.gateway.directory.suspend(domain.call("admin", "directory.suspend"),
                      f"agencies/{OWNER}", "audit pending")
    with pytest.raises(errors.PermissionDenied) as ended:
        next(watching)
    assert ended.value.reason == "AGENCY_SUSPENDED"
