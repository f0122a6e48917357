"""`govshare admin`: the directory from the terminal, as an administrator."""

from __future__ import annotations

import json

from click.testing import CliRunner

from certs.ca import CertificateAuthority
from gateway.cli.admin import admin
from tests.support.exchange import last_leaf


def run(network, *args: str, certs: str = "admin"):
    options = ["--certs", str(network.layout.certs(certs)), "--gateway", network.target,
               "--server-name", "localhost", "--json"]
    return CliRunner().invoke(admin, [*options, *args])


def test_an_agency_registered_suspended_reinstated_and_given_a_new_certificate(
        network, tmp_path):
    ca = CertificateAuthority.open(network.layout.ca_folder)
    ca.issue_agency("hn-water", tmp_path / "first")
    ca.issue_agency("hn-water", tmp_path / "second")

    registered = run(network, "register", "hn-water", "--name", "湖南省水利厅",
                     "--region", "430000", "--signing-cert", str(tmp_path / "first/signing.pem"))
    assert registered.exit_code == 0, registered.output
    assert json.loads(registered.output)["display_name"] == "湖南省水利厅"

    suspended = run(network, "suspend", "hn-water", "--reason", "under investigation")
    assert json.loads(suspended.output)["state"] == "AGENCY_STATE_SUSPENDED"
    reinstated = run(network, "reinstate", "agencies/hn-water", "--reason", "cleared")
    assert json.loads(reinstated.output)["state"] == "AGENCY_STATE_ACTIVE"

    replaced = run(network, "replace-certificate", "hn-water", "--signing-cert",
                   str(tmp_path / "second/signing.pem"), "--reason", "renewal")
    assert replaced.exit_code == 0, replaced.output
    agency = json.loads(replaced.output)
    assert agency["signing_certificate_pem"] == (tmp_path / "second/signing.pem").read_text()
    assert len(agency["previous_signing_certificates"]) == 1
    assert last_leaf(network)["action"] == "directory.signing_certificate.replace"

    listed = run(network, "agencies", "--region", "430000")
    assert [json.loads(line)["name"] for line in listed.output.splitlines()] == \
        ["agencies/hn-water"]


def test_an_agency_certificate_is_refused_with_exit_1(network):
    refused = run(network, "suspend", "sz-market", "--reason", "mine", certs="gd-health")
    assert refused.exit_code == 1
    assert "ROLE_NOT_ALLOWED" in refused.output


def test_usage_mistakes_exit_2(network, tmp_path):
    missing = run(network, "register", "hn-water", "--name", "n", "--region", "430000",
                  "--signing-cert", str(tmp_path / "nowhere.pem"))
    assert missing.exit_code == 2 and "cannot read the signing certificate" in missing.output
    no_reason = run(network, "suspend", "sz-market")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output


def test_a_table_by_default(network):
    options = ["--certs", str(network.layout.certs("admin")), "--gateway", network.target,
               "--server-name", "localhost"]
    table = CliRunner().invoke(admin, [*options, "agencies"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "agencies/zj-stats" in table.output and "ACTIVE" in table.output
