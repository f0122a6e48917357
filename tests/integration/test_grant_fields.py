"""A grant never covers more fields than its request named (every field only when it named
none), granted at once or by the owner; an owner's approval may narrow the fields, never widen
them. The signed grant, the receipt and the delivered file show it."""

from __future__ import annotations

import csv
import io

import grpc
import pytest

from agencies import errors
from gateway.v1 import exchange_pb2
from govshare import envelopes
from tests.support.exchange import ask, assert_only_refusal, counts, publish
from tests.support.publishing import chunked, manifest

CONTENT = b"region,beds,doctors\n440100,5321,812\n440300,4100,640\n"


@pytest.fixture
def parties(network):
    return network.agency("gd-health"), network.agency("sz-market")


def table(path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


def signed_fields(grant: exchange_pb2.Grant) -> list[str]:
    return list(exchange_pb2.GrantStatement.FromString(grant.signed_statement.payload).fields)


def test_asking_two_fields_of_an_unconditional_dataset_grants_and_delivers_only_them(
        network, parties, tmp_path):
    health, market = parties
    dataset = publish(health, "hospital-beds", CONTENT)

    created = ask(market, dataset, fields=["region", "beds"])

    assert list(created.grant.fields) == signed_fields(created.grant) == ["region", "beds"]
    reason = created.access_request.state_reason
    assert "access to the fields region, beds is granted at once" in reason
    assert "whole" not in reason
    fetched = market.fetch(dataset, tmp_path / "beds.csv")
    assert table(tmp_path / "beds.csv") == [["region", "beds"], ["440100", "5321"],
                                            ["440300", "4100"]]
    assert fetched.fields == list(fetched.receipt.fields) == ["region", "beds"]
    assert fetched.receipt.delivered_size == (tmp_path / "beds.csv").stat().st_size
    assert fetched.receipt.delivered_sha256 != fetched.receipt.content_sha256


def test_asking_no_fields_grants_and_delivers_every_field(network, parties, tmp_path):
    health, market = parties
    dataset = publish(health, "hospital-beds", CONTENT)

    created = ask(market, dataset)

    assert list(created.grant.fields) == signed_fields(created.grant) == []
    assert "access to every field is granted at once" in created.access_request.state_reason
    fetched = market.fetch(dataset, tmp_path / "beds.csv")
    assert (tmp_path / "beds.csv").read_bytes() == CONTENT
    assert fetched.fields == list(fetched.receipt.fields) == []


def test_an_automatic_grant_on_fewer_fields_without_column_digests_delivers_nothing(
        network, parties, tmp_path):
    health, market = parties
    dataset = publish(health, "scans", b"\x00\x01binary", media_type="OCTET_STREAM")
    grant = ask(market, dataset, fields=["region"]).grant
    assert list(grant.fields) == ["region"]
    before = counts(network)

    with pytest.raises(errors.FailedPrecondition) as refused:
        market.fetch(dataset, tmp_path / "scans.bin")

    assert refused.value.reason == "GRANT_FIELDS_NARROWER"
    assert_only_refusal(network, before, "exchange.fetch", "GRANT_FIELDS_NARROWER")
    assert not (tmp_path / "scans.bin").exists()


def test_a_grant_naming_every_schema_field_gets_no_undeclared_column_without_digests(
        network, parties, tmp_path):
    health, market = parties
    dataset = "agencies/gd-health/datasets/beds"
    content = b"region,beds,secret_id\n440100,5321,110101199001011234\n"
    undigested = manifest(dataset, content)  # its schema declares region and beds only
    health.upload(envelopes.seal(health.signing_key, envelopes.MANIFEST, undigested),
                  chunked(content), len(content))
    grant = ask(market, dataset, fields=["region", "beds"]).grant
    before = counts(network)

    with pytest.raises(errors.FailedPrecondition) as refused:
        market.fetch(dataset, tmp_path / "beds.csv")

    error = refused.value
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                          "GRANT_FIELDS_NARROWER")
    assert error.message == (
        f"{grant.name} covers only the fields region, beds, but {dataset}/versions/1 carries no"
        " column digests, so those fields cannot be delivered on their own, verifiably. The"
        " publisher must republish it with column digests (the SDK adds them for CSV and JSON"
        " Lines content with a schema), or the grantee ask for the whole dataset (naming no"
        " fields)")
    assert error.metadata == {"grant": grant.name, "version": f"{dataset}/versions/1",
                              "fields": "region,beds"}
    assert_only_refusal(network, before, "exchange.fetch", "GRANT_FIELDS_NARROWER")
    assert not (tmp_path / "beds.csv").exists()
    assert not (tmp_path / "beds.csv.part").exists()
    whole = network.agency("zj-stats")
    ask(whole, dataset)  # naming no fields: the publisher's signed content, whole
    assert whole.fetch(dataset, tmp_path / "whole.csv").path.read_bytes() == content


def test_the_owner_may_narrow_the_fields_asked_for(network, parties, tmp_path):
    health, market = parties
    dataset = publish(health, "visits", CONTENT, sharing_type="CONDITIONAL")
    request = ask(market, dataset, fields=["region", "beds"]).access_request

    grant = health.approve(request.name, fields=["region"]).grant

    assert list(grant.fields) == signed_fields(grant) == ["region"]
    fetched = market.fetch(dataset, tmp_path / "visits.csv")
    assert table(tmp_path / "visits.csv") == [["region"], ["440100"], ["440300"]]
    assert list(fetched.receipt.fields) == ["region"]


def test_an_approval_keeps_the_fields_asked_for_when_it_names_none(network, parties):
    health, market = parties
    dataset = publish(health, "visits", CONTENT, sharing_type="CONDITIONAL")
    request = ask(market, dataset, fields=["beds", "region"]).access_request

    grant = health.approve(request.name).grant

    assert list(grant.fields) == signed_fields(grant) == ["beds", "region"]


def test_an_owner_approval_widening_the_fields_asked_for_is_refused(network, parties):
    health, market = parties
    dataset = publish(health, "visits", CONTENT, sharing_type="CONDITIONAL")
    request = ask(market, dataset, fields=["region"]).access_request
    before = counts(network)

    with pytest.raises(errors.GovshareError) as refused:
        health.approve(request.name, fields=["region", "doctors"])

    error = refused.value
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT,
                                          "FIELDS_NOT_REQUESTED")
    assert error.message == ("signed_decision.fields may only narrow the requested fields"
                             " (region): doctors were not asked for")
    assert error.metadata == {"field": "signed_decision.fields", "fields": "doctors"}
    assert_only_refusal(network, before, "exchange.request.approve", "FIELDS_NOT_REQUESTED")
    assert market.access_request(request.name).state == \
        exchange_pb2.ACCESS_REQUEST_STATE_PENDING
    assert list(market.grants()) == []


def test_an_owner_approving_a_request_for_every_field_chooses_among_its_schema(network,
                                                                               parties):
    health, market = parties
    dataset = publish(health, "visits", CONTENT, sharing_type="CONDITIONAL")
    request = ask(market, dataset).access_request
    before = counts(network)

    with pytest.raises(errors.GovshareError) as refused:
        health.approve(request.name, fields=["doctors", "salary"])

    assert (refused.value.code, refused.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                          "FIELD_UNKNOWN")
    assert refused.value.metadata["fields"] == "salary"
    assert_only_refusal(network, before, "exchange.request.approve", "FIELD_UNKNOWN")
    grant = health.approve(request.name, fields=["doctors"]).grant
    assert list(grant.fields) == signed_fields(grant) == ["doctors"]
