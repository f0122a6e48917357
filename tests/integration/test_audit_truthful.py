"""The audit log says what happened, not what the tools did: publishing a new dataset from the
CLI or the SDK logs no refusal, and a refused call names the resources it claimed to be about,
so `govshare audit list --dataset X` and ListAuditEvents(dataset=X) find every attempt against
X, forged manifests, statements and decisions included; a stranger's refused decision names only
the request it guessed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner, Result

from agencies import errors
from gateway.cli import cli
from gateway.v1 import catalog_pb2, envelope_pb2, exchange_pb2
from govshare import envelopes
from govshare.signing import SigningKey
from tests.support.exchange import ask, counts, publish
from tests.support.publishing import CONTENT, chunked, manifest

BEDS = "agencies/gd-health/datasets/hospital-beds"
GIB = 1024 * 1024 * 1024


def govshare(network: Any, *args: str | Path) -> Result:
    result = CliRunner().invoke(cli, list(map(str, args)), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result


def agency_cli(network: Any, agency_id: str, *args: str | Path) -> Result:
    return govshare(network, "agency", "--certs", network.layout.certs(agency_id), "--gateway",
                    network.target, "--server-name", "localhost", *args)


def audit_list(network: Any, *filters: str) -> list[dict[str, Any]]:
    """`govshare audit list ... --json` over the gateway's database."""
    output = govshare(network, "audit", "list", "--config", network.layout.config_path,
                      "--json", *filters).output
    return [json.loads(line) for line in output.splitlines()]


def refusals(network: Any) -> list[str]:
    rows = network.gateway.db.reader().execute(
        "SELECT record FROM audit_leaves WHERE outcome = 'REFUSED'").fetchall()
    return [row[0].decode() for row in rows]


def stored(network: Any) -> tuple[int, int, list[Path]]:
    """Datasets, versions and blob files: what a refused publish must not add to."""
    conn = network.gateway.db.reader()
    return (conn.execute("SELECT COUNT(*) FROM datasets").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM dataset_versions").fetchone()[0],
            [p for p in network.gateway.blobs.agencies.rglob("*") if p.is_file()])


def test_publishing_a_new_dataset_from_the_cli_logs_no_refusal(network: Any,
                                                               tmp_path: Path) -> None:
    data = tmp_path / "beds.csv"
    data.write_bytes(CONTENT)
    first = agency_cli(network, "gd-health", "publish", data, "-d", "hospital-beds", "--title",
                       "Hospital beds")
    data.write_bytes(CONTENT + b"440400,1234\n")
    second = agency_cli(network, "gd-health", "publish", data, "-d", "hospital-beds",
                        "--title", "Hospital beds")
    sdk = network.agency("gd-health").publish("clinics", b"fresh", title="Clinics")
    assert f"published {BEDS}/versions/1\n" in first.output
    assert f"published {BEDS}/versions/2\n" in second.output
    assert sdk.dataset_version.version == 1
    assert refusals(network) == []
    assert [(e["action"], e["outcome"]) for e in audit_list(network, "--agency", "gd-health")
            if e["action"].startswith("catalog.")] == [("catalog.publish", "ALLOWED")] * 3


def _altered_after_signing(network: Any) -> envelope_pb2.Envelope:
    client = network.agency("gd-health")
    envelope = envelopes.seal(client.signing_key, envelopes.MANIFEST, manifest())
    envelope.payload = manifest(title="Altered after signing").SerializeToString()
    return envelope


def _sealed(network: Any, statement: catalog_pb2.Manifest, signer: str = "gd-health",
            ) -> envelope_pb2.Envelope:
    return envelopes.seal(network.agency(signer).signing_key, envelopes.MANIFEST, statement)


def _stale() -> catalog_pb2.Manifest:
    stale = manifest()
    stale.create_time.FromSeconds(stale.create_time.seconds - int(timedelta(hours=1).seconds))
    return stale


REFUSED_PUBLISHES = {
    "forged-signature": (
        _altered_after_signing, BEDS, grpc.StatusCode.PERMISSION_DENIED, "SIGNATURE_INVALID",
        "manifest signature does not verify with the signer's registered certificate"),
    "another-agencys-key": (
        lambda network: _sealed(network, manifest(), signer="sz-market"), BEDS,
        grpc.StatusCode.PERMISSION_DENIED, "SIGNER_NOT_CALLER",
        "manifest is signed by agency sz-market, but the caller is"
        " urn:govshare:agency:gd-health: sign with your own signing key"),
    "unknown-key": (
        lambda network: envelopes.seal(SigningKey.generate(), envelopes.MANIFEST, manifest()),
        BEDS, grpc.StatusCode.PERMISSION_DENIED, "SIGNER_UNKNOWN",
        "manifest is signed by a key no registered agency holds"),
    "too-large": (
        lambda network: _sealed(network, manifest(content_size=5 * GIB)), BEDS,
        grpc.StatusCode.RESOURCE_EXHAUSTED, "DATASET_TOO_LARGE",
        f"manifest.content_size {5 * GIB} exceeds the gateway's limit of {4 * GIB} bytes"),
    "invalid-field": (
        lambda network: _sealed(network, manifest(title="")), BEDS,
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "manifest.title"),
    "clock-skew": (
        lambda network: _sealed(network, _stale()), BEDS, grpc.StatusCode.INVALID_ARGUMENT,
        "CLOCK_SKEW", "manifest.create_time is more than 300 s from the gateway's clock;"
        " sign a fresh manifest"),
    "manifest-too-large": (
        lambda network: _sealed(network, manifest(abstract="x" * 300_000)), BEDS,
        grpc.StatusCode.INVALID_ARGUMENT, "MANIFEST_TOO_LARGE", "the signed manifest is"),
    "another-agencys-dataset": (
        lambda network: _sealed(network, manifest("agencies/sz-market/datasets/beds")),
        "agencies/sz-market/datasets/beds", grpc.StatusCode.PERMISSION_DENIED, "NOT_PUBLISHER",
        "manifest.dataset is under agencies/sz-market; agency gd-health may publish only under"
        " agencies/gd-health"),
}


@pytest.mark.parametrize("attack", REFUSED_PUBLISHES)
def test_refused_publish_is_found_by_the_dataset_it_claims(network: Any, attack: str) -> None:
    forge, dataset, code, reason, message = REFUSED_PUBLISHES[attack]
    envelope = forge(network)
    before = stored(network)
    with pytest.raises(errors.GovshareError) as refused:
        network.agency("gd-health").upload(envelope, chunked(CONTENT), len(CONTENT))
    assert (refused.value.code, refused.value.reason) == (code, reason)
    assert message in refused.value.message
    assert stored(network) == before

    found = audit_list(network, "--dataset", dataset)
    assert [(e["actor"], e["action"], e["outcome"], e["resources"]) for e in found] == [
        ("urn:govshare:agency:gd-health", "catalog.publish", "REFUSED", [dataset])]
    assert found[0]["reason"].startswith(f"{reason}: ")
    assert found[0]["envelopes"] == []  # a claim, not a statement the gateway accepted
    owner = network.agency(dataset.split("/")[1])  # the dataset's owner sees the attempt
    seen = list(owner.audit_events(dataset=dataset))
    assert [event.leaf_index for event in seen] == [found[0]["leaf_index"]]


def test_forged_access_request_is_found_by_the_dataset_it_claims(network: Any) -> None:
    publish(network.agency("gd-health"), "hospital-beds", sharing_type="CONDITIONAL")
    asker = network.agency("zj-stats")
    statement = asker.access_request_statement(
        BEDS, purpose="STATISTICS", purpose_text="quarterly report",
        legal_basis="Statistics Law of the PRC, article 7")
    envelope = envelopes.seal(asker.signing_key, envelopes.ACCESS_REQUEST, statement)
    statement.purpose_text = "altered after signing"
    envelope.payload = statement.SerializeToString()
    with pytest.raises(errors.PermissionDenied) as refused:
        asker.send_access_request(envelope)
    assert refused.value.reason == "SIGNATURE_INVALID"
    assert refused.value.message == ("signed_statement signature does not verify with the"
                                     " signer's registered certificate")
    assert network.gateway.db.reader().execute(
        "SELECT COUNT(*) FROM access_requests").fetchone()[0] == 0

    found = audit_list(network, "--dataset", BEDS, "--outcome", "REFUSED")
    assert [(e["action"], e["resources"]) for e in found] == [
        ("exchange.request.create", ["agencies/zj-stats", BEDS, "agencies/gd-health"])]
    assert [e.leaf_index for e in network.agency("gd-health").audit_events(
        dataset=BEDS, outcome="REFUSED")] == [found[0]["leaf_index"]]


def test_refused_registration_is_found_by_the_agency_it_names(network: Any) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        network.admin().register_agency("hb-health", "", "420000", "not a certificate")
    assert refused.value.message == "agency.display_name must be 1 to 200 characters"
    found = audit_list(network, "--agency", "hb-health")
    assert [(e["action"], e["outcome"], e["resources"]) for e in found] == [
        ("directory.register", "REFUSED", ["agencies/hb-health"])]


OTHER_REQUEST = f"agencies/zj-stats/accessRequests/{'0' * 32}"


def _garbage_signature(envelope: envelope_pb2.Envelope, network: Any) -> None:
    envelope.signatures[0].signature = b"\0" * 64


def _owners_key_id(envelope: envelope_pb2.Envelope, network: Any) -> None:
    envelope.signatures[0].key_id = network.agency("gd-health").signing_key.key_id


def _another_request(envelope: envelope_pb2.Envelope, network: Any) -> None:
    statement = exchange_pb2.DecisionStatement.FromString(envelope.payload)
    statement.access_request = OTHER_REQUEST
    envelope.CopyFrom(envelopes.seal(network.agency("zj-stats").signing_key,
                                      envelopes.DECISION, statement))


FORGED_DECISIONS = {
    "approval-with-a-forged-signature": (
        True, _garbage_signature, "SIGNATURE_INVALID",
        "signed_decision signature does not verify with the signer's registered certificate"),
    "approval-under-the-owners-key-id": (
        True, _owners_key_id, "SIGNER_NOT_CALLER", "signed_decision is signed by agency"
        " gd-health, but the caller is urn:govshare:agency:zj-stats: sign with your own signing"
        " key"),
    "denial-with-a-forged-signature": (
        False, _garbage_signature, "SIGNATURE_INVALID",
        "signed_decision signature does not verify with the signer's registered certificate"),
    "approval-of-another-request": (
        True, _another_request, "INVALID_ARGUMENT", "signed_decision.access_request must be {}"),
}


def _decide(client: Any, name: str, approve: bool, forge: Any, network: Any) -> Any:
    """`client` sends a decision on `name`, altered by `forge`, as ApproveAccessRequest (or
    DenyAccessRequest)."""
    outcome = (exchange_pb2.DECISION_OUTCOME_APPROVE if approve
               else exchange_pb2.DECISION_OUTCOME_DENY)
    envelope = client.decision(name, outcome, reason="" if approve else "not needed")
    forge(envelope, network)
    if approve:
        return client._call(client.exchange.ApproveAccessRequest,
                            exchange_pb2.ApproveAccessRequestRequest(
                                name=name, signed_decision=envelope))
    return client._call(client.exchange.DenyAccessRequest,
                        exchange_pb2.DenyAccessRequestRequest(name=name, signed_decision=envelope))


@pytest.mark.parametrize("attack", FORGED_DECISIONS)
def test_forged_decision_is_found_by_the_dataset_of_its_request(network: Any,
                                                                 attack: str) -> None:
    approve, forge, reason, message = FORGED_DECISIONS[attack]
    publish(network.agency("gd-health"), "hospital-beds", sharing_type="CONDITIONAL")
    requester = network.agency("zj-stats")
    name = ask(requester, BEDS).access_request.name
    before = counts(network)
    with pytest.raises(errors.GovshareError) as refused:
        _decide(requester, name, approve, forge, network)
    status = (grpc.StatusCode.INVALID_ARGUMENT if reason == "INVALID_ARGUMENT"
              else grpc.StatusCode.PERMISSION_DENIED)
    assert (refused.value.code, refused.value.reason) == (status, reason)
    assert refused.value.message == message.format(name)
    assert counts(network) == {**before, "audit_leaves": before["audit_leaves"] + 1}
    assert requester.access_request(name).state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING

    action = "exchange.request.approve" if approve else "exchange.request.deny"
    found = audit_list(network, "--dataset", BEDS, "--outcome", "REFUSED")
    assert [(e["actor"], e["action"], e["resources"]) for e in found] == [
        ("urn:govshare:agency:zj-stats", action,
         [name, "agencies/zj-stats", "agencies/gd-health", BEDS])]
    assert found[0]["reason"] == f"{reason}: {message.format(name)}"
    owner = network.agency("gd-health")
    for subject in ({"dataset": BEDS}, {"agency": "agencies/gd-health"}):
        assert [e.leaf_index for e in owner.audit_events(outcome="REFUSED", **subject)] == [
            found[0]["leaf_index"]]


@pytest.mark.parametrize("forge", [_garbage_signature, lambda envelope, network: None],
                         ids=["forged-signature", "own-signature"])
def test_strangers_decision_on_a_guessed_request_names_only_the_request(
        network: Any, forge: Any) -> None:
    publish(network.agency("gd-health"), "hospital-beds", sharing_type="CONDITIONAL")
    name = ask(network.agency("zj-stats"), BEDS).access_request.name
    stranger = network.agency("sz-market")
    before = counts(network)
    with pytest.raises(errors.PermissionDenied) as refused:
        _decide(stranger, name, True, forge, network)
    assert refused.value.reason in ("SIGNATURE_INVALID", "NOT_OWNER")
    assert refused.value.message in (
        "signed_decision signature does not verify with the signer's registered certificate",
        f"only the owner of the requested dataset may decide on {name}")
    assert "hospital-beds" not in str(refused.value) + str(refused.value.metadata)
    assert counts(network) == {**before, "audit_leaves": before["audit_leaves"] + 1}

    [event] = [json.loads(e.record) for e in stranger.audit_events(outcome="REFUSED")]
    assert (event["action"], event["resources"]) == ("exchange.request.approve", [name])
    assert "hospital-beds" not in json.dumps(event)
    assert audit_list(network, "--dataset", BEDS, "--outcome", "REFUSED") == []
    assert list(network.agency("gd-health").audit_events(dataset=BEDS, outcome="REFUSED")) == []
