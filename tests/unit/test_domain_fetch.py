"""Fetch planning, in-process: what a fetch would deliver, and what it refuses, under the terms
of the requester's grants and of the version asked for."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway import fetch
from govshare import envelopes, errors
from tests.support.domain import CONTENT, LocalTransport

OWNER, REQUESTER = "gd-health", "sz-market"


def plan(domain, dataset: str) -> fetch.Plan:
    return domain.gateway.fetch._plan(domain.call(REQUESTER, "exchange.fetch"), dataset, 0, "")


def refusal(domain, dataset: str) -> errors.GatewayError:
    with pytest.raises(errors.GatewayError) as refused:
        plan(domain, dataset)
    return refused.value


def test_a_grant_naming_fields_plans_their_projection_in_schema_order(domain):
    dataset = domain.publish(OWNER, "beds").dataset
    domain.ask(REQUESTER, dataset, fields=("doctors", "region"))
    planned = plan(domain, dataset)
    assert planned.version.name == f"{dataset}/versions/1"
    assert planned.fields == ["region", "doctors"]
    assert (planned.offset, planned.resumed) == (0, False)


def test_the_fetch_streams_the_content_then_a_receipt(domain):
    dataset = domain.publish(OWNER, "beds").dataset
    domain.ask(REQUESTER, dataset)
    transport = LocalTransport()
    call = domain.call(REQUESTER, "exchange.fetch", transport)
    parts = list(domain.gateway.fetch.serve(call, dataset, 0, ""))
    assert [part.WhichOneof("part") for part in parts] == ["start", "chunk", "receipt"]
    assert parts[1].chunk == CONTENT
    assert dict(transport.metadata)[envelopes.GATEWAY_CERTIFICATE_KEY].startswith(b"-----BEGIN")
    assert [outcome for outcome, _ in domain.leaves("exchange.fetch.complete")] == ["ALLOWED"]


def test_without_a_grant_nothing_is_delivered(domain):
    dataset = domain.publish(OWNER, "beds", sharing_type="CONDITIONAL").dataset
    domain.ask(REQUESTER, dataset)
    assert refusal(domain, dataset).reason == "NO_ACTIVE_GRANT"


def test_an_expired_grant_delivers_nothing(domain):
    dataset = domain.publish(OWNER, "beds").dataset
    domain.ask(REQUESTER, dataset)  # for 30 days
    domain.clock.offset = timedelta(days=31)
    assert refusal(domain, dataset).reason == "NO_ACTIVE_GRANT"


def test_a_version_published_under_stricter_terms_is_refused_naming_the_way_on(domain):
    dataset = domain.publish(OWNER, "beds", sharing_type="CONDITIONAL").dataset
    domain.publish(OWNER, "beds", version=2)
    domain.ask(REQUESTER, dataset)  # granted at once, under the latest version's terms
    assert plan(domain, dataset).version.version == 2
    refused = refusal(domain, f"{dataset}/versions/1")
    assert refused.reason == "GRANT_TERMS_STRICTER"
    assert refused.metadata["request_version"] == "1"


def test_a_hidden_version_answers_as_one_never_published(domain):
    dataset = domain.publish(OWNER, "beds", classification="CONFIDENTIAL").dataset
    domain.publish(OWNER, "beds", version=2)
    domain.ask(REQUESTER, dataset)
    hidden, missing = (refusal(domain, f"{dataset}/versions/{n}") for n in (1, 9))
    assert hidden.reason == missing.reason == "VERSION_NOT_FOUND"
    assert hidden.message.replace("/1 ", "/9 ") == missing.message


def test_a_not_shared_latest_version_stops_every_grant(domain):
    dataset = domain.publish(OWNER, "beds").dataset
    domain.ask(REQUESTER, dataset)
    domain.publish(OWNER, "beds", version=2, sharing_type="NOT_SHARED")
    for asked in (dataset, f"{dataset}/versions/1"):
        assert refusal(domain, asked).reason == "DATASET_NOT_SHARED"
