"""`govshare agency directory`, profiles, and the exit codes scripts rely on."""

from __future__ import annotations

import json
import socket

from click.testing import CliRunner

from gateway.cli.agency import EXIT_UNREACHABLE, agency


def _options(network, agency_id: str = "gd-health") -> list[str]:
    return ["--certs", str(network.layout.certs(agency_id)), "--gateway", network.target,
            "--server-name", "localhost"]


def test_directory_table_and_json(network):
    table = CliRunner().invoke(agency, [*_options(network), "directory"],
                               env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "agencies/zj-stats" in table.output and "ACTIVE" in table.output
    lines = CliRunner().invoke(agency, [*_options(network), "--json", "directory",
                                        "--region", "440000"]).output.splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["agencies/gd-health",
                                                           "agencies/sz-market"]


def test_profile_file_replaces_the_flags(network, tmp_path):
    profile = tmp_path / "profile.toml"
    profile.write_text(f'certs = "{network.layout.certs("zj-stats")}"\n'
                       f'gateway = "{network.target}"\nserver_name = "localhost"\n')
    result = CliRunner().invoke(agency, ["--profile", str(profile), "--json", "directory"])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 3


def test_exit_codes(network):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    options = _options(network)
    options[options.index("--gateway") + 1] = closed
    unreachable = CliRunner().invoke(agency, [*options, "directory"])
    assert unreachable.exit_code == EXIT_UNREACHABLE
    assert unreachable.output.startswith("Error: gateway unreachable")
    usage = CliRunner().invoke(agency, ["directory"])
    assert usage.exit_code == 2 and "--certs" in usage.output
