"""`govshare demo --single` end to end: every step passes, the summary matches the database, the
audit log verifies afterwards, and the gateway restarts from the folder the demo leaves."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from agencies.client import AgencyClient
from agencies.sim.scenario import SUMMARY_FILE
from gateway import config as config_module
from gateway.cli import cli
from gateway.server import create_server

COUNTS = {
    "agencies": "SELECT count(*) FROM agencies",
    "datasets": "SELECT count(*) FROM datasets",
    "versions": "SELECT count(*) FROM dataset_versions",
    "grants": "SELECT count(*) FROM grants",
    "exchanges": "SELECT count(*) FROM exchanges WHERE state = 'COMPLETED'",
    "denials": "SELECT count(*) FROM access_requests WHERE state = 'DENIED'",
    "refusals": "SELECT count(*) FROM audit_leaves WHERE outcome = 'REFUSED'",
    "audit_size": "SELECT count(*) FROM audit_leaves",
}


@pytest.mark.timeout(120)
def test_every_step_passes_and_the_folder_holds_everything(demo_run):
    root, output = demo_run
    assert output.count("✓") == 14 and "✗" not in output
    for path in ("gateway.toml", "govshare.db", "blobs", "certs/ca/ca.pem", "certs/admin",
                 "certs/auditor", "certs/gd-miit/signing.key", "certs/bj-ecology/tls.pem"):
        assert (root / path).exists(), path
    assert "DATASET_NOT_SHARED" in output and "GRANT_REVOKED" in output
    assert "SIGNATURE_INVALID" in output and "SIGNER_NOT_CALLER" in output
    assert f"audit verify --config {root / 'gateway.toml'}" in output
    assert "buf curl --protocol grpc" in output
    assert f"govshare admin --certs {root / 'certs' / 'admin'}" in output


def test_summary_figures_match_the_database(demo_run):
    root, output = demo_run
    summary = json.loads((root / SUMMARY_FILE).read_text())
    conn = sqlite3.connect(f"file:{root / 'govshare.db'}?mode=ro", uri=True)
    try:
        for figure, query in COUNTS.items():
            assert summary[figure] == conn.execute(query).fetchone()[0], figure
        root_hash = conn.execute(
            "SELECT root_hash FROM checkpoints ORDER BY tree_size DESC LIMIT 1").fetchone()[0]
    finally:
        conn.close()
    assert summary["audit_root"] == root_hash.hex()
    assert summary["agencies"] >= 6 and summary["provinces"] >= 4
    assert summary["exchanges"] >= 6 and summary["denials"] == 2 and summary["refusals"] >= 4
    assert summary["audit_root"][:16] in output


def test_audit_verify_passes_afterwards(demo_run):
    root, _ = demo_run
    result = CliRunner().invoke(cli, ["audit", "--config", str(root / "gateway.toml"), "verify"])
    assert result.exit_code == 0, result.output
    summary = json.loads((root / SUMMARY_FILE).read_text())
    assert f"OK: {summary['audit_size']} entries" in result.output


def test_the_gateway_restarts_from_the_demo_folder(demo_run):
    root, _ = demo_run
    config = config_module.load(root / "gateway.toml").replace(server={"listen": "127.0.0.1:0"})
    server = create_server(config)  # re-verifies the audit log before serving
    server.start()
    try:
        with AgencyClient(f"127.0.0.1:{server.port}", root / "certs" / "zj-stats",
                          server_name="localhost") as client:
            assert len(list(client.agencies())) == 7
            assert client.get("agencies/sc-traffic/datasets/traffic-counts").latest_version == 1
    finally:
        server.stop(grace=1)


def test_demo_refuses_a_folder_that_holds_something(tmp_path):
    (tmp_path / "gateway.toml").write_text("")
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not empty" in result.output


def test_the_network_demo_refuses_a_large_dataset_a_revocation_could_not_cut(tmp_path):
    """Relayed, a fetch of 2 MiB is in flight whole before the revocation lands."""
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "net"), "--large-mib", "2"])
    assert result.exit_code == 2
    assert "at least 12 MiB" in result.output and "--single" in result.output
    assert not (tmp_path / "net").exists()


@pytest.mark.timeout(120)
def test_the_smallest_roster_runs_every_step(tmp_path):
    """Six agencies leave out the last of the roster and the needs that involve it."""
    root = tmp_path / "net"
    result = CliRunner().invoke(cli, ["demo", "--single", "--dir", str(root), "--agencies", "6",
                                      "--large-mib", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.count("✓") == 14 and "✗" not in result.output
    assert "gd-miit" not in result.output and not (root / "certs" / "gd-miit").exists()
    assert "bj-ecology" in result.output
    assert json.loads((root / SUMMARY_FILE).read_text())["agencies"] == 6
