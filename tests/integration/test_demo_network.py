"""`govshare demo`, the national network, run as a user runs it (a process of its own starting a
process per gateway), its outcome checked from the outside: the steps it printed, the processes
gone when it ends (also when interrupted, or when a step fails), the cross-region exchanges in
the logs of both gateways they passed through and the revoked fetch cut mid-stream, the
witnesses' refusals in their own audit logs, and every log meeting its witness quorum when
verified offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agencies import errors
from agencies.sim.scenario import SUMMARY_FILE, MiB
from gateway.cli.demo import NETWORK_MIN_LARGE_MIB
from gateway.demo import BEFORE_RESTORE, ROLLED_BACK, NationalDemo
from gateway.national import REGIONS
from gateway.process import LOG_FILE, govshare_command
from tests.support.commands import govshare

WITNESSES = [region.gateway_id for region in REGIONS if region.gateway_id != ROLLED_BACK]
LARGE = int(NETWORK_MIN_LARGE_MIB * MiB)
"""The large dataset, as small as the network demo takes: a revoked fetch of it is cut mid-way."""
DEMO = ("demo", "--agencies", "6", "--large-mib", f"{NETWORK_MIN_LARGE_MIB:g}")
STARTED = "Start the gateways"
REVOKED_PART = Path("inbox", "zj-stats", "revoked-traffic-counts.part")
"""What the revoked fetch received."""


def processes_of(root: Path) -> list[int]:
    """The running processes whose command line names `root`: the demo's gateways (and the
    demo itself while it runs)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(root).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:  # it ended meanwhile
            continue
    return found


def start_demo(root: Path) -> subprocess.Popen:
    return subprocess.Popen(govshare_command(*DEMO, "--dir", str(root)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def network_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, int]]:
    """The national demo run to its end: its folder, its output and its exit code."""
    root = tmp_path_factory.mktemp("national") / "net"
    demo = start_demo(root)
    output, _ = demo.communicate(timeout=120)
    yield root, output, demo.returncode


def logged(root: Path, member: str, action: str) -> list[dict]:
    """The events of `action` in `member`'s audit log, as `govshare audit list` prints them."""
    config = root / member / "gateway.toml"
    listed = govshare(config, "audit", "--config", str(config), "list", "--action", action,
                      "--json")
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def step_lines(output: str) -> dict[str, str]:
    """Each step's first line (✓ done, – skipped, ✗ failed), by the title it starts with."""
    return {line[2:]: line[0] for line in output.splitlines() if line[:2] in ("✓ ", "– ", "✗ ")}


@pytest.mark.timeout(150)
def test_every_step_runs_and_every_gateway_stops(network_demo):
    root, output, code = network_demo
    assert code == 0, output
    marks = step_lines(output)
    assert set(marks.values()) == {"✓"}, output
    assert len(marks) == 15
    assert processes_of(root) == []
    for region in REGIONS:
        folder = root / region.gateway_id
        for name in ("gateway.toml", "govshare.db", "blobs", "certs/gateway/witness.key"):
            assert (folder / name).exists(), folder / name
        assert (folder / LOG_FILE).read_text().rstrip().endswith("gateway stopped")


def test_beijing_finds_guangdong_datasets_marked_with_their_member(network_demo):
    _, output, _ = network_demo
    assert "network_member gd-gateway" in output
    assert "finds hospital-beds (gd-gateway)" in output


def test_explore_further_starts_the_gateways_before_the_agency_commands(network_demo):
    _, output, _ = network_demo
    explore = output[output.index("Explore further"):]
    assert ".venv/bin" in explore
    assert explore.index("Start the gateways first") < explore.index("gateway serve") \
        < explore.index("govshare agency")


def test_the_cross_region_fetch_is_in_the_owners_and_the_relays_logs(network_demo):
    root, _, _ = network_demo
    completed = logged(root, "sc-gateway", "exchange.fetch.complete")
    assert [(e["actor"], e["via"]) for e in completed] == [
        ("urn:govshare:agency:bj-ecology", "urn:govshare:gateway:bj-gateway")]
    relayed = logged(root, "bj-gateway", "exchange.fetch.relay.complete")
    assert [(e["actor"], e["resources"][0], e["envelopes"]) for e in relayed] == [
        ("urn:govshare:agency:bj-ecology", completed[0]["resources"][0],
         completed[0]["envelopes"])]  # the receipt's digest, the same in both


def test_the_denial_is_in_the_owners_and_the_requesters_logs(network_demo):
    root, _, _ = network_demo
    denied = logged(root, "gd-gateway", "exchange.request.deny")
    assert [e["actor"] for e in denied] == ["urn:govshare:agency:gd-health"]
    request = denied[0]["resources"][0]
    assert request.startswith("agencies/zj-stats/accessRequests/")
    forwarded = [e["resources"][0] for e in logged(root, ROLLED_BACK, "exchange.request.forward")]
    learned = {e["resources"][0]: e["reason"]
               for e in logged(root, ROLLED_BACK, "exchange.request.learn")}
    assert request in forwarded
    assert learned[request].startswith("member gd-gateway: DENIED")


def test_the_revocation_cut_the_relayed_fetch_mid_stream(network_demo):
    root, _, _ = network_demo
    broken = logged(root, "sc-gateway", "exchange.fetch.break")
    assert [(e["actor"], e["via"], e["reason"].split(":")[0]) for e in broken] == [
        ("urn:govshare:agency:zj-stats", "urn:govshare:gateway:zj-gateway", "GRANT_REVOKED")]
    exchange = broken[0]["resources"][0]
    relay_broken = [e for e in logged(root, ROLLED_BACK, "exchange.fetch.relay.break")
                    if e["resources"][0] == exchange]
    assert len(relay_broken) == 1 and "GRANT_REVOKED" in relay_broken[0]["reason"]
    assert 0 < (root / REVOKED_PART).stat().st_size < LARGE  # stopped before the end


def test_the_witnesses_recorded_their_refusals_of_the_restored_gateway(network_demo):
    root, _, _ = network_demo
    for witness in WITNESSES:
        refusals = logged(root, witness, "witness.refused")
        assert any(event["actor"] == f"urn:govshare:gateway:{ROLLED_BACK}"
                   and event["reason"].startswith("WITNESS_CONSISTENCY_UNPROVED")
                   for event in refusals), refusals


def test_every_log_meets_its_witness_quorum_but_the_restored_one(network_demo):
    root, _, _ = network_demo
    for witness in WITNESSES:
        config = root / witness / "gateway.toml"
        verified = govshare(config, "audit", "--config", str(config), "verify")
        assert verified.returncode == 0, verified.stderr
        assert "(quorum 2)" in verified.stdout
    config = root / ROLLED_BACK / "gateway.toml"
    forked = govshare(config, "audit", "--config", str(config), "verify", "--against",
                      str(config.parent / BEFORE_RESTORE))
    assert forked.returncode == 1 and "FAILED: fork" in forked.stderr
    figures = {m["member"]: m for m in json.loads((root / SUMMARY_FILE).read_text())["members"]}
    assert sorted(figures) == sorted(region.gateway_id for region in REGIONS)
    assert all(len(figures[witness]["cosigners"]) >= 2 for witness in WITNESSES)
    assert figures[ROLLED_BACK]["checkpoint"] > figures[ROLLED_BACK]["witnessed"]


def test_the_network_configuration_verifies(network_demo):
    root, _, _ = network_demo
    config = root / REGIONS[0].gateway_id / "gateway.toml"
    verified = govshare(config, "network", "verify", str(root / "network.pb"),
                        "--ca-certificate", str(root / "certs" / "ca" / "ca.pem"))
    assert verified.returncode == 0, verified.stderr
    assert f"{len(REGIONS)} members" in verified.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_demo_stops_every_gateway(tmp_path: Path, signum: int) -> None:
    root = tmp_path / "net"
    demo = start_demo(root)
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if line.startswith(f"✓ {STARTED}"):
                break
        else:
            pytest.fail(f"the gateways never started: {demo.stdout.read()}")
        assert len(processes_of(root)) == 1 + len(REGIONS)
        demo.send_signal(signum)
        demo.wait(30)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode != 0
    assert processes_of(root) == []


@pytest.mark.timeout(60)
def test_a_failed_step_leaves_no_gateway_running(tmp_path: Path) -> None:
    """A gateway gone mid-scenario fails the next step; closing the demo then stops the rest."""
    demo = NationalDemo.create(tmp_path / "net", 6, 2 * MiB, seed=1)
    lay_out, start, register, *_ = demo.steps()
    try:
        lay_out.run()
        start.run()
        pids = [gateway.pid for gateway in demo.gateways.values()]
        os.kill(pids[-1], signal.SIGKILL)
        with pytest.raises(errors.Unavailable):
            register.run()
    finally:
        demo.close()
    assert processes_of(tmp_path) == []
