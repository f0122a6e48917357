"""`govshare agency directory`, profiles, and the exit codes scripts rely on: arguments that are
not UTF-8, profile values that are not text and addresses that are not host:port are one-line
usage errors."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from certs.ca import CertificateAuthority
from gateway.cli.agency import agency
from gateway.cli.exits import EXIT_UNREACHABLE
from tests.support.exchange import counts, publish

NOT_UTF8 = b"beds \xff".decode("utf-8", "surrogateescape")
"""An argument as Python receives bytes the terminal's encoding cannot decode."""


def _options(network, agency_id: str = "gd-health") -> list[str]:
    return ["--certs", str(network.layout.certs(agency_id)), "--gateway", network.target,
            "--server-name", "localhost"]


def _run(network, agency_id: str, *args: str | Path) -> Result:
    return CliRunner().invoke(agency, [*_options(network, agency_id), *map(str, args)],
                              env={"COLUMNS": "250"})


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


def _one_line_usage_error(result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert len(result.output.strip().splitlines()) == 1, result.output
    for text in expected:
        assert text in result.output


def test_local_mistakes_exit_2_with_one_line(network, tmp_path):
    options = _options(network)
    certs = options.index("--certs") + 1
    for folder, expected in ((tmp_path / "missing", "tls.pem"),
                             (network.layout.certs("admin"), "signing.key")):
        options[certs] = str(folder)
        _one_line_usage_error(CliRunner().invoke(agency, [*options, "directory"]), str(folder),
                              expected, "give --certs an agency's folder")
    profile = tmp_path / "profile.toml"
    profile.write_text(f'gateway = "{network.target}"\n')
    _one_line_usage_error(CliRunner().invoke(agency, ["--profile", str(profile), "directory"]),
                          str(profile), "needs certs =")


def test_a_certificate_of_another_ca_is_said_to_be_untrusted(network, tmp_path):
    foreign = CertificateAuthority.init(tmp_path / "foreign-ca")
    foreign.issue_agency("gd-health", tmp_path / "impostor")
    shutil.copy(network.layout.ca_folder / "ca.pem", tmp_path / "impostor" / "ca.pem")
    options = _options(network)
    options[options.index("--certs") + 1] = str(tmp_path / "impostor")
    refused = CliRunner().invoke(agency, [*options, "directory"])
    assert refused.exit_code == EXIT_UNREACHABLE
    assert refused.output.startswith("Error: the gateway closed the connection during the TLS"
                                     " handshake: the certificate may not be trusted by this"
                                     " gateway")
    (tmp_path / "impostor" / "ca.pem").write_bytes((tmp_path / "foreign-ca" / "ca.pem")
                                                   .read_bytes())
    untrusting = CliRunner().invoke(agency, [*options, "directory"])
    assert untrusting.exit_code == EXIT_UNREACHABLE
    assert untrusting.output.startswith("Error: the gateway's TLS certificate is not trusted by"
                                        " the ca.pem of --certs")


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
        _one_line_usage_error(_run(network, agency_id, *args), option, "not valid UTF-8")
    group = CliRunner().invoke(agency, ["--certs", str(network.layout.certs("sz-market")),
                                        "--gateway", network.target, "--server-name", NOT_UTF8,
                                        "directory"])
    _one_line_usage_error(group, "--server-name", "not valid UTF-8")
    assert counts(network) == before  # not even a refusal: nothing reached the gateway


@pytest.mark.parametrize("line, key", [("gateway = 57607", "gateway"),
                                       ("server_name = true", "server_name")])
def test_a_profile_value_that_is_not_text_is_a_usage_error(network, tmp_path, line, key):
    profile = tmp_path / "profile.toml"
    profile.write_text(f'certs = "{network.layout.certs("zj-stats")}"\n{line}\n')
    result = CliRunner().invoke(agency, ["--profile", str(profile), "directory"])
    _one_line_usage_error(result, str(profile), f'{key} = "')


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1", ":8443",
                                     "127.0.0.1:８４４３", "127.0.0.1:-1"])
def test_a_gateway_address_must_be_host_and_port(network, address):
    result = CliRunner().invoke(agency, ["--certs", str(network.layout.certs("zj-stats")),
                                         "--gateway", address, "directory"])
    _one_line_usage_error(result, "not host:port with a port from 1 to 65535", "--gateway")
