"""SDK and CLI behaviour at the edges: row counts on column-batch boundaries, arguments that are
not UTF-8, what a projected fetch reports, dataset filters, typed errors, profile and address
checks, certificate checks of manifests, and the mode of fetched files."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner, Result

from agencies import errors
from agencies.catalog import verify_signed_manifest
from certs.ca import CertificateAuthority
from gateway.cli.agency import agency
from gateway.v1 import catalog_pb2, exchange_pb2
from govshare import columns, envelopes, signing
from tests.integration.exchange_support import ask, assert_only_refusal, counts, publish
from tests.integration.test_fetch import BIG, break_off

NOT_UTF8 = b"beds \xff".decode("utf-8", "surrogateescape")
"""An argument as Python receives bytes the terminal's encoding cannot decode."""


def cli(network: Any, agency_id: str, *args: str | Path) -> Result:
    options = ["--certs", str(network.layout.certs(agency_id)), "--gateway", network.target,
               "--server-name", "localhost"]
    return CliRunner().invoke(agency, [*options, *map(str, args)], env={"COLUMNS": "250"})


def one_line_usage_error(result: Result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert len(result.output.strip().splitlines()) == 1, result.output
    for text in expected:
        assert text in result.output, result.output


def rows_csv(rows: int) -> bytes:
    return ("region,beds,doctors\n"
            + "".join(f"r{i},{i},d{i}\n" for i in range(rows))).encode()


@pytest.mark.parametrize("rows", [0, 1024, 2048])
def test_csv_on_a_batch_boundary_publishes_and_projects(network, tmp_path, rows):
    """Column digests are hashed 1024 rows at a time: a row count that is a multiple of that
    (0 included, a header-only CSV) publishes, and a field-limited fetch of it verifies."""
    health, market = network.agency("gd-health"), network.agency("sz-market")
    content = rows_csv(rows)
    dataset = publish(health, f"rows-{rows}", content, sharing_type="CONDITIONAL")
    health.approve(ask(market, dataset).access_request.name, fields=["beds"])

    fetched = market.fetch(dataset, tmp_path / "beds.csv")

    delivered = (tmp_path / "beds.csv").read_bytes()
    assert delivered == b"".join(columns.Projection([content], catalog_pb2.MEDIA_TYPE_CSV,
                                                    ["beds"]))
    assert fetched.fields == ["beds"] and fetched.manifest.row_count == rows
    assert fetched.receipt.delivered_sha256 == hashlib.sha256(delivered).digest()


def test_text_arguments_that_are_not_utf8_are_usage_errors(network, tmp_path):
    health = network.agency("gd-health")
    dataset = publish(health, "beds")
    data = tmp_path / "beds.csv"
    data.write_text("region,beds\n1,2\n")
    before = counts(network)
    for agency_id, args, option in [
        ("sz-market", ["datasets", "-q", NOT_UTF8], "--query"),
        ("gd-health", ["publish", data, "-d", "beds", "--title", NOT_UTF8], "--title"),
        ("sz-market", ["request", dataset, "--purpose", "statistics", "--purpose-text",
                       NOT_UTF8, "--legal-basis", "Statistics Law"], "--purpose-text"),
        ("gd-health", ["withdraw", "beds", "--reason", NOT_UTF8], "--reason"),
        ("sz-market", ["show", NOT_UTF8], "NAME"),
    ]:
        one_line_usage_error(cli(network, agency_id, *args), option, "not valid UTF-8")
    group = CliRunner().invoke(agency, ["--certs", str(network.layout.certs("sz-market")),
                                        "--gateway", network.target, "--server-name", NOT_UTF8,
                                        "directory"])
    one_line_usage_error(group, "--server-name", "not valid UTF-8")
    assert counts(network) == before  # not even a refusal: nothing reached the gateway


def test_a_projected_fetch_reports_the_file_it_wrote(network, tmp_path):
    health = network.agency("gd-health")
    content = rows_csv(3)
    dataset = publish(health, "beds", content, sharing_type="CONDITIONAL")
    health.approve(ask(network.agency("sz-market"), dataset).access_request.name,
                   fields=["beds"])
    source = hashlib.sha256(content).hexdigest()

    shown = cli(network, "sz-market", "fetch", dataset, "--to", tmp_path / "a.csv")
    assert shown.exit_code == 0, shown.output
    written = (tmp_path / "a.csv").read_bytes()
    digest = hashlib.sha256(written).hexdigest()
    lines = shown.output.splitlines()[-3:]  # after the progress bar
    assert f"fields beds ({len(written)} bytes, sha256 {digest})" in lines[0]
    assert lines[1] == f"projected from its content of {len(content)} bytes, sha256 {source}"

    emitted = cli(network, "sz-market", "--json", "fetch", dataset, "--to", tmp_path / "b.csv")
    assert emitted.exit_code == 0, emitted.output
    receipt = json.loads(emitted.output)["receipt"]
    assert (receipt["fields"], receipt["delivered_sha256"], receipt["delivered_size"]) == \
        (["beds"], hashlib.sha256((tmp_path / "b.csv").read_bytes()).hexdigest(), len(written))
    assert (receipt["content_sha256"], receipt["content_size"]) == (source, len(content))


def test_dataset_filters_take_a_bare_id_of_ones_own(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "beds")
    publish(health, "visits")
    ask(market, dataset)
    ask(market, health.dataset_name("visits"))

    assert [g.dataset for g in health.grants("INCOMING", dataset="beds")] == [dataset]
    assert [r.dataset for r in health.access_requests("INCOMING", dataset="beds")] == [dataset]
    for command in ("grants", "requests"):
        listed = cli(network, "gd-health", "--json", command, "--incoming", "--dataset", "beds")
        assert listed.exit_code == 0, listed.output
        assert [json.loads(line)["dataset"] for line in listed.output.splitlines()] == [dataset]


@pytest.mark.parametrize("method, action", [("ListGrants", "exchange.grant.list"),
                                            ("ListAccessRequests", "exchange.request.list")])
@pytest.mark.parametrize("dataset", ["beds", "agencies/gd-health/datasets/Not A Name!!",
                                     "agencies/gd-health"])
def test_a_malformed_dataset_filter_is_refused(network, method, action, dataset):
    health = network.agency("gd-health")
    publish(health, "beds")
    request = getattr(exchange_pb2, f"{method}Request")(
        parent=health.name, direction=exchange_pb2.DIRECTION_INCOMING, dataset=dataset)
    before = counts(network)
    with pytest.raises(errors.InvalidArgument) as caught:
        health._call(getattr(health.exchange, method), request)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.metadata["field"] == "dataset"
    assert "agencies/{agency}/datasets/{dataset}" in caught.value.message
    assert_only_refusal(network, before, action, "INVALID_ARGUMENT")


def test_deadlines_and_cancellations_raise_their_own_types(network):
    health = network.agency("gd-health")
    # A watch with nothing to deliver runs until its deadline.
    responses = health.exchange.WatchEvents(
        exchange_pb2.WatchEventsRequest(parent=health.name), timeout=0.3)
    with pytest.raises(errors.DeadlineExceeded) as caught:
        list(health._checked(responses))
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    responses = health.exchange.WatchEvents(exchange_pb2.WatchEventsRequest(parent=health.name))
    responses.cancel()
    with pytest.raises(errors.Cancelled) as caught:
        list(health._checked(responses))
    assert caught.value.code == grpc.StatusCode.CANCELLED


@pytest.mark.parametrize("line, key", [("gateway = 57607", "gateway"),
                                       ("server_name = true", "server_name")])
def test_a_profile_value_that_is_not_text_is_a_usage_error(network, tmp_path, line, key):
    profile = tmp_path / "profile.toml"
    profile.write_text(f'certs = "{network.layout.certs("zj-stats")}"\n{line}\n')
    result = CliRunner().invoke(agency, ["--profile", str(profile), "directory"])
    one_line_usage_error(result, str(profile), f'{key} = "')


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1", ":8443",
                                     "127.0.0.1:８４４３", "127.0.0.1:-1"])
def test_a_gateway_address_must_be_host_and_port(network, address):
    result = CliRunner().invoke(agency, ["--certs", str(network.layout.certs("zj-stats")),
                                         "--gateway", address, "directory"])
    one_line_usage_error(result, "not host:port with a port from 1 to 65535", "--gateway")


def test_a_locally_corrupted_partial_file_is_said_to_be_discarded(network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "big", BIG, media_type="OCTET_STREAM")
    ask(market, dataset)
    (tmp_path / "in").mkdir()
    target = tmp_path / "in" / "big.bin"
    break_off(network, market, dataset, target)
    part = tmp_path / "in" / "big.bin.part"
    with part.open("r+b") as handle:  # a byte changed on this side while the fetch was off
        handle.seek(100)
        handle.write(bytes([BIG[100] ^ 1]))

    failed = cli(network, "sz-market", "fetch", dataset, "--to", target)
    assert failed.exit_code == 1, failed.output
    message = failed.output.strip().splitlines()[-1]
    assert message.startswith("Error: the fetched data failed verification: content SHA-256")
    assert f"kept in {part}: that partial file is discarded, so fetching again starts anew" \
        in message
    assert "ERROR" not in message
    assert list((tmp_path / "in").iterdir()) == []

    assert cli(network, "sz-market", "fetch", dataset, "--to", target).exit_code == 0
    assert target.read_bytes() == BIG


def sealed(certs: Path, signed_at: datetime) -> object:
    """A manifest of gd-health's signed with the key in `certs`, created at `signed_at`."""
    manifest = catalog_pb2.Manifest(dataset="agencies/gd-health/datasets/beds", version=1,
                                    title="Beds")
    manifest.create_time.FromDatetime(signed_at)
    return envelopes.seal(signing.SigningKey.load(certs / "signing.key"), envelopes.MANIFEST,
                           manifest)


def test_a_directory_certificate_that_is_no_signing_certificate_fails_verification(network):
    certs = network.layout.certs("gd-health")
    envelope = sealed(certs, datetime.now(UTC))
    ca = (certs / "ca.pem").read_bytes()
    assert verify_signed_manifest(envelope, (certs / "signing.pem").read_bytes(), ca).title
    for certificate, says in (((certs / "tls.pem").read_bytes(), "not a signing certificate"),
                              (b"garbage", "not a PEM certificate")):
        with pytest.raises(errors.VerificationError, match=says):
            verify_signed_manifest(envelope, certificate, ca)
    with pytest.raises(errors.VerificationError, match="national CA certificate is not a PEM"):
        verify_signed_manifest(envelope, (certs / "signing.pem").read_bytes(), b"garbage")


def test_a_manifest_is_checked_against_its_certificate_at_its_create_time(tmp_path):
    """A certificate valid for one day, ten days ago: what it signed then still verifies."""
    now = datetime.now(UTC).replace(microsecond=0)
    ca = CertificateAuthority.init(tmp_path / "ca", now=now - timedelta(days=30))
    certs = tmp_path / "gd-health"
    ca.issue_agency("gd-health", certs, validity_days=1, now=now - timedelta(days=10))
    pem, root = (certs / "signing.pem").read_bytes(), ca.certificate_pem

    then = verify_signed_manifest(sealed(certs, now - timedelta(days=10, hours=-1)), pem, root)
    assert then.title == "Beds"
    with pytest.raises(errors.VerificationError, match="not valid when the manifest was signed"):
        verify_signed_manifest(sealed(certs, now - timedelta(days=5)), pem, root)
    fresh = tmp_path / "fresh"
    ca.issue_agency("gd-health", fresh)
    with pytest.raises(errors.VerificationError, match="later than now"):
        verify_signed_manifest(sealed(fresh, now + timedelta(hours=1)),
                               (fresh / "signing.pem").read_bytes(), root)
    assert verify_signed_manifest(sealed(fresh, now + timedelta(minutes=2)),
                                  (fresh / "signing.pem").read_bytes(), root).title


def test_fetched_content_is_readable_by_its_owner_only(network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "admissions", classification="CONFIDENTIAL")
    health.approve(ask(market, dataset).access_request.name)  # hidden: its owner decides
    seen = []
    part = tmp_path / "admissions.csv.part"
    fetched = market.fetch(dataset, tmp_path / "admissions.csv",
                           progress=lambda *_: seen.append(part.stat().st_mode & 0o777))
    assert seen and set(seen) == {0o600}
    assert fetched.path.stat().st_mode & 0o777 == 0o600
