"""`govshare agency publish|datasets|show|versions|withdraw` against a real gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from gateway.cli.agency import agency

CSV = "region,beds,updated\n440100,5321,2024-01-01\n440300,4410,2024-01-01\n"


def run(network: Any, agency_id: str, *args: str | Path) -> Result:
    options = ["--certs", str(network.layout.certs(agency_id)), "--gateway", network.target,
               "--server-name", "localhost"]
    return CliRunner().invoke(agency, [*options, *map(str, args)], env={"COLUMNS": "200"})


def ok(network: Any, agency_id: str, *args: str | Path) -> Result:
    result = run(network, agency_id, *args)
    assert result.exit_code == 0, result.output
    return result


def test_every_catalog_command_has_help_text() -> None:
    for name in ("publish", "datasets", "show", "versions", "withdraw"):
        assert agency.commands[name].help


def test_publish_list_show_versions_withdraw(network: Any, tmp_path: Path) -> None:
    data = tmp_path / "beds.csv"
    data.write_text(CSV)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps([
        {"name": "region", "type": "STRING", "description": "GB/T 2260 code"},
        {"name": "beds", "type": "INTEGER", "sensitivity": "NONE"},
        {"name": "updated", "type": "DATE"},
    ]))
    result = ok(network, "gd-health", "publish", data, "-d", "hospital-beds", "--title",
                "Hospital beds", "--classification", "public", "--sharing-type",
                "UNCONDITIONAL", "--tag", "health", "--update-cycle", "MONTHLY")
    assert "published agencies/gd-health/datasets/hospital-beds/versions/1" in result.output
    result = ok(network, "gd-health", "--json", "publish", data, "-d", "hospital-beds",
                "--title", "Hospital beds", "--schema", schema, "--tag", "health")
    published = json.loads(result.output)
    assert published["dataset_version"]["version"] == "2"
    assert published["content_deduplicated"] is True

    name = "agencies/gd-health/datasets/hospital-beds"
    table = ok(network, "zj-stats", "datasets", "-q", "hosp").output
    assert name in table and "Hospital beds" in table
    listed = ok(network, "zj-stats", "--json", "datasets", "--tag", "health").output
    assert [json.loads(line)["name"] for line in listed.splitlines()] == [name]

    shown = ok(network, "zj-stats", "show", name).output
    assert "INTEGER" in shown and "GB/T 2260 code" in shown
    versions = ok(network, "zj-stats", "versions", name, "--verify").output
    assert versions.count("verified") == 2

    ok(network, "gd-health", "withdraw", "hospital-beds", "--reason", "obsolete")
    assert name not in ok(network, "zj-stats", "datasets").output
    assert name in ok(network, "zj-stats", "datasets", "--withdrawn").output


def test_schema_inferred_from_a_csv_header(network: Any, tmp_path: Path) -> None:
    data = tmp_path / "beds.csv"
    data.write_text(CSV)
    ok(network, "gd-health", "publish", data, "-d", "beds", "--title", "Beds")
    shown = json.loads(ok(network, "gd-health", "--json", "show", "beds").output)
    assert [f["name"] for f in shown["manifest"]["schema"]] == ["region", "beds", "updated"]
    assert shown["manifest"]["media_type"] == "MEDIA_TYPE_CSV"


def test_refusals_exit_1_with_one_line(network: Any, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"\0\1\2")
    result = run(network, "gd-health", "publish", data, "-d", "secret", "--title", "Secret",
                 "--sharing-type", "NOT_SHARED")
    assert result.exit_code == 1
    assert "LEGAL_BASIS_REQUIRED" in result.output
    result = run(network, "zj-stats", "withdraw", "agencies/gd-health/datasets/secret",
                 "--reason", "x")
    assert result.exit_code == 1 and "NOT_OWNER" in result.output
    assert run(network, "gd-health", "publish", data, "-d", "x").exit_code == 2


def test_a_csv_that_is_not_utf8_needs_a_schema(network: Any, tmp_path: Path) -> None:
    data = tmp_path / "beds.csv"
    data.write_bytes("地区,床位\n440100,5321\n".encode("gbk"))
    before = network.gateway.db.reader().execute("SELECT COUNT(*) FROM audit_leaves").fetchone()
    result = run(network, "gd-health", "publish", data, "-d", "beds", "--title", "Beds")
    assert result.exit_code == 2, result.output
    assert result.output == (f"Error: {data} is not UTF-8 text, so its header cannot name the"
                             " fields: give --schema, or convert the file to UTF-8 (for example"
                             " `iconv -f GBK -t UTF-8`)\n")
    after = network.gateway.db.reader().execute("SELECT COUNT(*) FROM audit_leaves").fetchone()
    assert after == before


def test_a_csv_that_does_not_parse_is_a_usage_error(network: Any, tmp_path: Path) -> None:
    data = tmp_path / "beds.csv"
    data.write_text("region,beds\n440100,5321,7\n")
    result = run(network, "gd-health", "publish", data, "-d", "beds", "--title", "Beds")
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        "Error: the content does not read as its media type: line 2 has 3 cells, but the header"
        " names 2 fields; fix the content, or publish it as OCTET_STREAM")
