"""Text an agency sends (names, titles, reasons, tags, field names) is printed as text by every
CLI output: Rich markup, `:emoji:` codes, terminal escapes, line breaks, tabs and bidi overrides
reach the terminal as the characters that were sent, escaped where they would act."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner, Result

from agencies import errors
from agencies.sim.roster import AgencySpec
from agencies.sim.scenario import Step, StepSkipped
from gateway.cli import cli
from gateway.cli.demo import DONE, FAILED, SKIPPED, _run
from gateway.text import LogFormatter
from gateway.v1 import catalog_pb2
from tests.support.exchange import publish
from tests.support.network import AGENCIES

HOSTILE = "[link=https://evil.example]x[/link][bold green]:smile: \x1b[31m\u202eevil\nFORGED\tROW"
"""Markup, an emoji code, an ESC colour, a right-to-left override, a line break that would forge
a table row, and a tab."""
SHOWN = "[link=https://evil.example]x[/link][bold green]:smile: \\x1b[31m\\u202eevil\\nFORGED\\tROW"
"""HOSTILE as every human-readable output must print it, character for character."""
IN_JSON = ("[link=https://evil.example]x[/link][bold green]:smile: \\u001b[31m\\u202eevil\\nFORGED"
           "\\tROW")
"""HOSTILE inside a JSON string as --json prints it (the same value, nothing raw)."""
TAG, TAG_SHOWN = "[b]:smile:\x1b[31m\u202e\n", "[b]:smile:\\x1b[31m\\u202e\\n"
"""HOSTILE's kind, short enough for a tag."""
HIDDEN = ("\x1b", "\u202e", "\t", "\r")


def assert_shown(result: Result, expected: str = SHOWN, times: int = 1) -> None:
    """The command succeeded and printed `expected` exactly `times` times, and nothing of
    HOSTILE acted: no raw escape, override or tab, no forged line, no markup consumed."""
    assert result.exit_code == 0, result.output
    output = result.output
    assert output.count(expected) == times, output
    assert not [char for char in HIDDEN if char in output], output
    assert output.count("FORGED") == output.count("\\nFORGED"), output  # no forged line
    assert "✔" not in output and "😄" not in output


@pytest.fixture
def hostile(network_factory) -> Any:
    """A network whose gd-health is named HOSTILE and publishes HOSTILE text in every free-text
    field of a dataset; zj-stats asks for it and is denied with HOSTILE as the reason."""
    agencies = [AgencySpec("gd-health", HOSTILE, "440000"), *AGENCIES[1:]]
    network = network_factory("hostile", agencies)
    health, stats = network.agency("gd-health"), network.agency("zj-stats")
    schema = [catalog_pb2.SchemaField(name="beds", type=catalog_pb2.FIELD_TYPE_STRING,
                                      sensitivity=catalog_pb2.SENSITIVITY_NONE,
                                      description=HOSTILE)]
    network.beds = publish(health, "beds", b"beds\n1\n", sharing_type="CONDITIONAL",
                           schema=schema, abstract=HOSTILE, sharing_conditions=HOSTILE,
                           legal_basis=HOSTILE, tags=[TAG])
    request = stats.request_access(network.beds, purpose="STATISTICS", purpose_text=HOSTILE,
                                   legal_basis=HOSTILE).access_request
    health.deny(request.name, HOSTILE)
    return network


def agency_cli(network: Any, agency_id: str, *args: str, columns: int = 250) -> Result:
    options = ["--certs", str(network.layout.certs(agency_id)), "--gateway", network.target,
               "--server-name", "localhost"]
    return CliRunner().invoke(cli, ["agency", *options, *args], env={"COLUMNS": str(columns)})


def admin_cli(network: Any, *args: str) -> Result:
    options = ["--certs", str(network.layout.certs("admin")), "--gateway", network.target,
               "--server-name", "localhost"]
    return CliRunner().invoke(cli, ["admin", *options, *args], env={"COLUMNS": "250"})


def audit_cli(network: Any, *args: str) -> Result:
    return CliRunner().invoke(cli, ["audit", "--config", str(network.layout.config_path),
                                    *args], env={"COLUMNS": "250"})


def test_hostile_agency_name_in_directory_tables(hostile) -> None:
    table = agency_cli(hostile, "zj-stats", "directory")
    assert_shown(table)
    assert len(table.output.splitlines()) == 4 + len(AGENCIES)  # borders, header, one row each
    assert_shown(admin_cli(hostile, "agencies"))


def test_hostile_agency_name_in_json_lines(hostile) -> None:
    result = agency_cli(hostile, "zj-stats", "--json", "directory", "--region", "440000")
    assert_shown(result, IN_JSON)
    assert json.loads(result.output.splitlines()[0])["display_name"] == HOSTILE


def test_hostile_dataset_title_in_other_agencies_datasets(hostile) -> None:
    health = hostile.agency("gd-health")
    health.publish("visits", b"\x00", title=HOSTILE, media_type="OCTET_STREAM",
                   classification="INTERNAL", sharing_type="CONDITIONAL")
    result = agency_cli(hostile, "sz-market", "datasets")
    assert_shown(result)
    assert "agencies/gd-health/datasets/visits" in result.output


def test_hostile_manifest_fields_in_show(hostile) -> None:
    result = agency_cli(hostile, "gd-health", "show", hostile.beds)
    # abstract, conditions, legal basis and the schema field's description
    assert_shown(result, times=4)
    assert result.output.count(TAG_SHOWN) == 1


def test_hostile_denial_reason_in_request_tables(hostile) -> None:
    assert_shown(agency_cli(hostile, "zj-stats", "requests"))
    assert_shown(agency_cli(hostile, "gd-health", "requests", "--incoming"))


def test_hostile_field_name_in_grant_tables(hostile) -> None:
    health = hostile.agency("gd-health")
    field = catalog_pb2.SchemaField(name=TAG, type=catalog_pb2.FIELD_TYPE_STRING,
                                    sensitivity=catalog_pb2.SENSITIVITY_NONE)
    weird = publish(health, "weird", b"\x00\x01", media_type="OCTET_STREAM", schema=[field],
                    sharing_type="CONDITIONAL")
    asked = agency_cli(hostile, "sz-market", "--json", "request", weird, "--purpose",
                       "statistics", "--purpose-text", "annual report", "--legal-basis",
                       "Statistics Law", "--field", TAG)
    request = json.loads(asked.output)["access_request"]["name"]
    assert_shown(agency_cli(hostile, "gd-health", "approve", request, "--field", TAG),
                 TAG_SHOWN)
    assert_shown(agency_cli(hostile, "sz-market", "grants"), TAG_SHOWN)


def test_hostile_withdraw_reason_in_watch(hostile) -> None:
    stats = hostile.agency("zj-stats")
    stats.request_access(hostile.beds, purpose="STATISTICS", purpose_text="annual report",
                         legal_basis="Statistics Law")
    hostile.agency("gd-health").withdraw(hostile.beds, HOSTILE)
    events = stats.watch(cursor="0")
    count = next(number for number, event in enumerate(events, start=1)
                 if "withdrawn" in event.summary)
    events.close()
    result = agency_cli(hostile, "zj-stats", "watch", "--cursor", "0", "--limit", str(count))
    assert "withdrawn" in result.output
    assert_shown(result, times=2)  # the denial's reason, then the withdrawal's
    assert len(result.output.splitlines()) == count


def test_hostile_name_in_a_refused_call_in_audit_list_and_show(hostile) -> None:
    stats = hostile.agency("zj-stats")
    with pytest.raises(errors.GovshareError):
        stats.agency(f"agencies/{HOSTILE}")
    refused = audit_cli(hostile, "list", "--outcome", "REFUSED", "--action", "directory.get")
    assert_shown(refused, f"agencies/{SHOWN}")
    leaf = refused.output.split("agencies/[link")[0].splitlines()[-1].split()[1]
    shown_event = audit_cli(hostile, "show", leaf)
    assert_shown(shown_event, f"agencies/{IN_JSON}")
    assert json.loads(shown_event.output)["resources"] == [f"agencies/{HOSTILE}"]
    lines = audit_cli(hostile, "list", "--json", "--outcome", "REFUSED").output.splitlines()
    assert json.loads(lines[-1])["resources"] == [f"agencies/{HOSTILE}"]
    exported = audit_cli(hostile, "export", "--format", "csv", "--outcome", "REFUSED")
    assert_shown(exported, f"agencies/{SHOWN}")
    assert list(csv.DictReader(io.StringIO(exported.output)))[-1]["resources"] == \
        f"agencies/{SHOWN}"


def test_hostile_withdraw_reason_in_an_error_message(hostile) -> None:
    stats = hostile.agency("zj-stats")
    asked = stats.request_access(hostile.beds, purpose="STATISTICS", purpose_text="report",
                                 legal_basis="Statistics Law").access_request
    stats.withdraw_request(asked.name, HOSTILE)
    result = agency_cli(hostile, "gd-health", "approve", asked.name)
    assert result.exit_code == 1
    assert result.output.startswith("Error: FAILED_PRECONDITION [REQUEST_NOT_PENDING]: ")
    assert result.output.endswith(f"withdrawn by its requester: {SHOWN})\n")
    assert not [char for char in HIDDEN if char in result.output], result.output


def test_hostile_gateway_message_in_a_demo_step(capsys) -> None:
    def refused() -> str:
        raise errors.PermissionDenied(HOSTILE, code=grpc.StatusCode.PERMISSION_DENIED,
                                      reason="X")

    def skipped() -> str:
        raise StepSkipped(HOSTILE)

    assert _run(Step("a step", refused), RuntimeError, StepSkipped) == FAILED
    assert _run(Step("another step", lambda: HOSTILE), RuntimeError, StepSkipped) == DONE
    assert _run(Step("a third step", skipped), RuntimeError, StepSkipped) == SKIPPED
    output = capsys.readouterr().out
    assert output == (f"✗ a step\n    PERMISSION_DENIED [X]: {SHOWN}\n✓ another step (0.0 s)\n"
                      f"    {SHOWN}\n– a third step (skipped)\n    {SHOWN}\n")


def test_hostile_name_in_a_refused_call_logs_one_line(hostile, tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogFormatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("govshare")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with pytest.raises(errors.GovshareError):
            hostile.agency("zj-stats").agency(f"agencies/{HOSTILE}")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert [line.split(" status=")[0] for line in lines if "directory.get" in line] == [
        "INFO govshare.rpc rpc method=directory.get caller=urn:govshare:agency:zj-stats"
        f" peer={lines[0].split(' peer=')[1].split(' ')[0]}"]
    assert "FORGED" not in stream.getvalue() and "\x1b" not in stream.getvalue()


LONG_ID = "long-" + "x" * 59
"""The longest dataset id."""
LONG = {"title": "Ж" * 150, "abstract": "Щ" * 150, "sharing_conditions": "Ю" * 150,
        "legal_basis": "Я" * 150}
"""Manifest text with no space to wrap at, longer than a terminal line."""


def publish_long(client: Any, **text: str) -> str:
    """Publish dataset LONG_ID with manifest `text`; its name."""
    client.publish(LONG_ID, b"\x00", media_type="OCTET_STREAM", classification="INTERNAL",
                   sharing_type="CONDITIONAL", **text)
    return client.dataset_name(LONG_ID)


def assert_whole(result: Result, columns: int, *texts: str) -> None:
    """The command succeeded within `columns` and printed each of `texts` whole: folded onto
    lines of its own cell, never cut short with an ellipsis."""
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "…" not in result.output and max(map(len, lines)) <= columns, result.output
    unfolded = "".join(line.strip(" │┃") for line in lines)
    assert [text for text in texts if text not in unfolded] == [], result.output


@pytest.mark.parametrize("columns", [80, 40])
def test_long_manifest_text_is_folded_not_cut_in_show(network, columns: int) -> None:
    health = network.agency("gd-health")
    name = publish_long(health, **LONG)
    digest = health.get(name).manifest.content_sha256.hex()
    result = agency_cli(network, "gd-health", "show", name, columns=columns)
    assert_whole(result, columns, name, digest, *LONG.values())


@pytest.mark.parametrize("columns", [80, 40])
def test_long_names_are_folded_not_cut_in_tables(network, columns: int) -> None:
    publish_long(network.agency("gd-health"), title=LONG["title"])
    result = agency_cli(network, "sz-market", "datasets", columns=columns)
    assert_whole(result, columns)
    assert result.output.count(LONG["title"][0]) == len(LONG["title"])
    assert result.output.count("x") == LONG_ID.count("x")
