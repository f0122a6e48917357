"""Access requests and decisions, in-process: the sharing rules as the domain applies them."""

from __future__ import annotations

import json

import pytest

from govshare import errors
from tests.support.visibility import MISSING, anonymous

OWNER, REQUESTER = "gd-health", "sz-market"


def test_an_unconditional_dataset_is_granted_at_once_with_the_fields_asked(domain):
    dataset = domain.publish(OWNER, "beds").dataset
    created = domain.ask(REQUESTER, dataset, fields=("region", "beds"))
    assert created.request.state == "APPROVED"
    assert created.grant.grantee == REQUESTER
    assert json.loads(created.grant.fields) == ["region", "beds"]
    assert [outcome for outcome, _ in domain.leaves("exchange.grant.create")] == ["ALLOWED"]


def test_a_hidden_dataset_is_answered_as_a_name_never_published(domain):
    hidden = domain.publish(OWNER, "secret", classification="CONFIDENTIAL").dataset
    answers = [domain.ask(REQUESTER, name) for name in (hidden, MISSING)]
    assert [created.grant for created in answers] == [None, None]
    assert [created.request.state for created in answers] == ["PENDING", "PENDING"]
    reasons = {anonymous(created.request.state_reason, name)
               for created, name in zip(answers, (hidden, MISSING), strict=True)}
    assert len(reasons) == 1


def test_an_approval_narrows_the_fields_asked_and_never_widens_them(domain):
    dataset = domain.publish(OWNER, "beds", sharing_type="CONDITIONAL").dataset
    request = domain.ask(REQUESTER, dataset, fields=("region", "beds")).request
    assert request.state == "PENDING"
    with pytest.raises(errors.InvalidArgument) as widened:
        domain.decide(OWNER, request.name, fields=("region", "doctors"))
    assert widened.value.reason == "FIELDS_NOT_REQUESTED"
    approved = domain.decide(OWNER, request.name, fields=("region",))
    assert approved.request.state == "APPROVED"
    assert json.loads(approved.grant.fields) == ["region"]


def test_only_the_owner_decides_and_a_denial_says_why(domain):
    dataset = domain.publish(OWNER, "beds", sharing_type="CONDITIONAL").dataset
    request = domain.ask(REQUESTER, dataset).request.name
    with pytest.raises(errors.PermissionDenied) as stranger:
        domain.decide("zj-stats", request)
    assert stranger.value.reason == "NOT_OWNER"
    with pytest.raises(errors.InvalidArgument) as silent:
        domain.decide(OWNER, request, approve=False)
    assert silent.value.reason == "REASON_REQUIRED"
    denied = domain.decide(OWNER, request, approve=False, reason="not for statistics")
    assert (denied.request.state, denied.grant) == ("DENIED", None)


def test_a_dry_run_answers_like_the_real_call_and_records_nothing(domain):
    dataset = domain.publish(OWNER, "beds").dataset
    dry = domain.ask(REQUESTER, dataset, validate_only=True)
    assert (dry.request.name, dry.request.state) == ("", "APPROVED")
    assert domain.gateway.db.reader().execute("SELECT COUNT(*) FROM access_requests"
                                              ).fetchone()[0] == 0
    assert domain.ask(REQUESTER, dataset).request.state == "APPROVED"
