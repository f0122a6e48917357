"""`govshare agency request|requests|withdraw-request|approve|deny|grants|revoke|fetch|fetches|
watch` end to end."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from gateway.cli.agency import agency
from tests.support.exchange import ask, publish
from tests.support.fetching import BIG, break_off
from tests.support.publishing import rows_csv

COMMANDS = ("request", "requests", "withdraw-request", "approve", "deny", "grants", "revoke",
            "fetch", "fetches", "watch")


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


def test_request_and_grant_tables_fold_names_at_80_columns(network: Any) -> None:
    beds = publish(network.agency("gd-health"), "beds")
    granted = as_json(network, "sz-market", *ask_args(beds))[0]
    options = ["--certs", str(network.layout.certs("sz-market")), "--gateway", network.target,
               "--server-name", "localhost"]
    for command, name in (("requests", granted["access_request"]["name"]),
                          ("grants", granted["grant"]["name"])):
        table = CliRunner().invoke(agency, [*options, command], env={"COLUMNS": "80"})
        assert table.exit_code == 0, table.output
        assert "…" not in table.output
        first_column = "".join(line.split("│")[1].strip() for line in table.output.splitlines()
                               if line.count("│") > 2)
        assert name in first_column


def test_fetch_to_a_missing_folder_is_a_usage_error(network: Any, tmp_path: Path) -> None:
    beds = publish(network.agency("gd-health"), "beds")
    ok(network, "sz-market", *ask_args(beds))
    missing = tmp_path / "no-such-folder" / "beds.csv"
    result = run(network, "sz-market", "fetch", beds, "--to", missing)
    assert result.exit_code == 2, result.output
    assert result.output == (f"Error: cannot write {missing}: the folder {missing.parent} does"
                             " not exist; create it or choose another --to\n")


def test_ctrl_c_during_watch_exits_130(network: Any) -> None:
    publish(network.agency("gd-health"), "beds")
    command = [sys.executable, "-c", "from gateway.cli import main; main()", "agency",
               "--certs", str(network.layout.certs("gd-health")), "--gateway", network.target,
               "--server-name", "localhost", "--json", "watch", "--cursor", "0"]
    watching = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert "EVENT_TYPE_" in watching.stdout.readline()  # it is watching
        watching.send_signal(signal.SIGINT)
        _, err = watching.communicate(timeout=30)
    finally:
        if watching.poll() is None:
            watching.kill()
            watching.wait()
    assert watching.returncode == 130, err
    assert err.strip() == "Interrupted."


def test_withdraw_request_then_ask_again(network: Any) -> None:
    visits = publish(network.agency("gd-health"), "visits", sharing_type="CONDITIONAL")
    pending = as_json(network, "sz-market", *ask_args(visits))[0]["access_request"]["name"]

    assert run(network, "sz-market", "withdraw-request", pending).exit_code == 2  # --reason
    refused = run(network, "gd-health", "withdraw-request", pending, "--reason", "mine")
    assert refused.exit_code == 1 and "NOT_REQUESTER" in refused.output
    table = ok(network, "sz-market", "withdraw-request", pending, "--reason", "wrong quarter")
    assert "WITHDRAWN" in table.output and "wrong quarter" in table.output

    refused = run(network, "gd-health", "approve", pending)
    assert refused.exit_code == 1 and "REQUEST_NOT_PENDING" in refused.output
    again = as_json(network, "sz-market", *ask_args(visits))[0]["access_request"]
    assert again["state"] == "ACCESS_REQUEST_STATE_PENDING" and again["name"] != pending
    withdrawn = as_json(network, "sz-market", "requests", "--state", "withdrawn")
    assert [r["name"] for r in withdrawn] == [pending]


def test_a_projected_fetch_reports_the_file_it_wrote(network, tmp_path):
    health = network.agency("gd-health")
    content = rows_csv(3)
    dataset = publish(health, "beds", content, sharing_type="CONDITIONAL")
    health.approve(ask(network.agency("sz-market"), dataset).access_request.name,
                   fields=["beds"])
    source = hashlib.sha256(content).hexdigest()

    shown = run(network, "sz-market", "fetch", dataset, "--to", tmp_path / "a.csv")
    assert shown.exit_code == 0, shown.output
    written = (tmp_path / "a.csv").read_bytes()
    digest = hashlib.sha256(written).hexdigest()
    lines = shown.output.splitlines()[-3:]  # after the progress bar
    assert f"fields beds ({len(written)} bytes, sha256 {digest})" in lines[0]
    assert lines[1] == f"projected from its content of {len(content)} bytes, sha256 {source}"

    emitted = run(network, "sz-market", "--json", "fetch", dataset, "--to", tmp_path / "b.csv")
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
        listed = run(network, "gd-health", "--json", command, "--incoming", "--dataset", "beds")
        assert listed.exit_code == 0, listed.output
        assert [json.loads(line)["dataset"] for line in listed.output.splitlines()] == [dataset]


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

    failed = run(network, "sz-market", "fetch", dataset, "--to", target)
    assert failed.exit_code == 1, failed.output
    message = failed.output.strip().splitlines()[-1]
    assert message.startswith("Error: the fetched data failed verification: content SHA-256")
    assert f"kept in {part}: that partial file is discarded, so fetching again starts anew" \
        in message
    assert "ERROR" not in message
    assert list((tmp_path / "in").iterdir()) == []

    assert run(network, "sz-market", "fetch", dataset, "--to", target).exit_code == 0
    assert target.read_bytes() == BIG
