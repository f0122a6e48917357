"""`govshare agency request|requests|approve|deny|grants|revoke|fetch|fetches|watch` end to
end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from gateway.cli.agency import agency
from tests.integration.exchange_support import publish

COMMANDS = ("request", "requests", "approve", "deny", "grants", "revoke", "fetch", "fetches",
            "watch")


def run(network: Any, agency_id: str, *args: str | Path) -> Result:
    options = ["--certs", str(network.layout.certs(agency_id)), "--gateway", network.target,
               "--server-name", "localhost"]
    return CliRunner().invoke(agency, [*options, *map(str, args)], env={"COLUMNS": "250"})


def ok(network: Any, agency_id: str, *args: str | Path) -> Result:
    result = run(network, agency_id, *args)
    assert result.exit_code == 0, result.output
    return result


def as_json(network: Any, agency_id: str, *args: str | Path) -> list[dict]:
    lines = ok(network, agency_id, "--json", *args).output.splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def ask_args(dataset: str) -> list[str]:
    return ["request", dataset, "--purpose", "statistics", "--purpose-text", "annual report",
            "--legal-basis", "Statistics Law art. 7", "--days", "30"]


def test_every_exchange_command_has_help_text() -> None:
    for name in COMMANDS:
        assert agency.commands[name].help


def test_request_decide_fetch_revoke_watch(network: Any, tmp_path: Path) -> None:
    health = network.agency("gd-health")
    content = b"region,beds\n440100,5321\n"
    beds = publish(health, "beds", content)
    visits = publish(health, "visits", sharing_type="CONDITIONAL")

    granted = as_json(network, "sz-market", *ask_args(beds))[0]
    assert granted["access_request"]["state"] == "ACCESS_REQUEST_STATE_APPROVED"
    pending = as_json(network, "sz-market", *ask_args(visits))[0]["access_request"]["name"]
    denied_one = as_json(network, "zj-stats", *ask_args(visits))[0]["access_request"]["name"]

    table = ok(network, "gd-health", "requests", "--incoming", "--state", "pending").output
    assert pending.split("/")[-1] in table and "PENDING" in table
    ok(network, "gd-health", "approve", pending, "--days", "7", "--field", "region")
    ok(network, "gd-health", "deny", denied_one, "--reason", "no legal basis")
    refused = run(network, "gd-health", "deny", denied_one, "--reason", "again")
    assert refused.exit_code == 1 and "REQUEST_NOT_PENDING" in refused.output

    held = as_json(network, "sz-market", "grants")
    assert len(held) == 2
    target = tmp_path / "beds.csv"
    fetched = ok(network, "sz-market", "fetch", beds, "--to", target).output
    assert "verified" in fetched and target.read_bytes() == content
    who = as_json(network, "gd-health", "fetches")
    assert [(f["requester"], f["dataset_version"]) for f in who] == [
        ("agencies/sz-market", f"{beds}/versions/1")]
    assert "agencies/sz-market" in ok(network, "gd-health", "fetches", "--dataset", "beds").output
    assert as_json(network, "sz-market", "fetches") == []

    grant = granted["grant"]["name"]
    ok(network, "gd-health", "revoke", grant, "--reason", "report done")
    assert "REVOKED" in ok(network, "sz-market", "grants", "--state", "revoked").output
    events = as_json(network, "sz-market", "watch", "--cursor", "0", "--limit", "2")
    assert [e["type"] for e in events] == ["EVENT_TYPE_ACCESS_REQUEST_APPROVED",
                                          "EVENT_TYPE_GRANT_REVOKED"]


def test_fetch_without_grant_exits_1(network: Any, tmp_path: Path) -> None:
    beds = publish(network.agency("gd-health"), "beds")
    result = run(network, "sz-market", "fetch", beds, "--to", tmp_path / "x")
    assert result.exit_code == 1 and "NO_ACTIVE_GRANT" in result.output
