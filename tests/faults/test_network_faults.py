"""Faults of a national network, with several real member gateways on 127.0.0.1 (real mutual
TLS, real cosignatures, a SQLite file each): a peer down, a peer holding a stale network
configuration, a witness down."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agencies.client import AgencyClient
from agencies.errors import WitnessQuorumNotReached
from certs import SIGNING_CERT, TLS_CERT
from tests.support.commands import govshare
from tests.support.exchange import ask, publish
from tests.support.federation import TwoRegions, start_members, two_regions

GD, BJ, SH, ZJ = "gd-gateway", "bj-gateway", "sh-gateway", "zj-gateway"


def names(listing) -> set[str]:
    return {item.name for item in listing}


def local_agency(regions: TwoRegions, agency_id: str, region: str) -> AgencyClient:
    """One more agency of gd-gateway, registered there."""
    members = regions.members
    folder = members.federation.root / "agencies" / agency_id
    members.federation.ca.issue_agency(agency_id, folder)
    regions.admins[GD].register_agency(agency_id, f"{agency_id} agency", region,
                                       (folder / SIGNING_CERT).read_text())
    return AgencyClient(members.target(GD), folder, server_name="localhost")


def test_a_peer_down_leaves_local_work_going_and_is_caught_up_after_it_restarts(
        tmp_path: Path) -> None:
    """bj-gateway goes down: gd-gateway publishes, lists and exchanges between its own
    agencies as before, lists bj's last copy, marked stale once gd restarts without reaching
    it; when bj is back, one pull takes only what changed since."""
    regions = two_regions(tmp_path)
    members = regions.members
    gz = local_agency(regions, "gz-transport", "440100")
    try:
        regions.clients["bj-stats"].publish("census", b"a\n1\n", title="Beijing census",
                                            classification="PUBLIC")
        assert members.gateway(GD).replicator.pull()[BJ] == "2 changes, 0 refused"
        members.stop(BJ)
        assert members.gateway(GD).replicator.pull()[BJ].startswith("UNAVAILABLE")

        gd = regions.clients["gd-health"]
        beds = publish(gd, "beds", sharing_type="CONDITIONAL")
        gd.approve(ask(gz, beds).access_request.name)
        fetched = gz.fetch(beds, tmp_path / "beds.csv")
        assert (tmp_path / "beds.csv").read_bytes() == b"region,beds,doctors\n1,2,3\n"
        assert fetched.receipt.dataset_version == f"{beds}/versions/1"
        assert {beds, "agencies/bj-stats/datasets/census"} <= names(gd.datasets())

        members.stop(GD)
        members.start(GD)  # bj still down: never reached since this start
        listing = gd.datasets()
        assert "agencies/bj-stats/datasets/census" in names(listing)  # the last copy
        assert listing.stale_members == (BJ, SH)
        assert gd.agencies().stale_members == (BJ, SH)
        assert gd.agency("bj-stats").network_member == BJ

        members.start(BJ)
        regions.clients["bj-stats"].publish("census-2", b"a\n2\n", title="Beijing census 2",
                                            classification="PUBLIC")
        assert members.gateway(GD).replicator.pull()[BJ] == "1 changes, 0 refused"
        listing = gd.datasets()
        assert "agencies/bj-stats/datasets/census-2" in names(listing)
        assert listing.stale_members == (SH,)
        listed = [item.name for item in gd.datasets()]
        assert len(listed) == len(set(listed))
    finally:
        gz.close()
        regions.close()


@pytest.fixture
def stale(tmp_path: Path):
    """Version 1 names gd and bj (quorum 1); version 2 adds sh (quorum 2). gd and sh hold
    version 2; bj holds version 1 from a file of its own, as if its operator never copied the
    new one."""
    members = start_members(tmp_path, (GD, BJ, SH), started=0)
    try:
        members.hold(BJ, members.write_configuration(1, (GD, BJ), quorum=1))
        members.start(GD)
        members.start(BJ)
        current = members.write_configuration(2, quorum=2)
        assert members.gateway(GD).network.refresh()
        members.start(SH)
        yield members, current
    finally:
        members.close()


def test_a_peer_holding_a_stale_configuration(stale) -> None:
    """A member holding version 1 knows nothing of sh: it neither calls sh nor takes its
    calls (PEER_NOT_IN_NETWORK, audited), so sh cannot reach its quorum of 2 while bj's log,
    under bj's quorum of 1, is cosigned by gd; calls between bj and gd go on. It recovers
    at the refresh that takes version 2."""
    members, current = stale
    bj = members.gateway(BJ)
    assert bj.network.current.version == 1

    # The calls it makes: only to the members of its version.
    assert members.push(BJ) == {GD: "cosigned"}
    assert set(bj.replicator.pull()) == {GD}
    # The calls it receives: from sh, refused at its door and audited; from gd, served.
    pushed = members.push(SH)
    assert pushed[GD] == "cosigned"
    assert pushed[BJ].startswith("PERMISSION_DENIED PEER_NOT_IN_NETWORK")
    assert "lists no other member of id 'sh-gateway'" in pushed[BJ]
    assert members.gateway(SH).replicator.pull()[BJ].startswith("PERMISSION_DENIED")
    assert members.push(GD) == {BJ: "cosigned", SH: "cosigned"}
    assert "witness.add_checkpoint" in members.actions(BJ)  # the refusal, audited
    # Witnessing: sh's log misses its quorum of 2, naming gd as the one that cosigned.
    with members.sdk(SH) as client, pytest.raises(WitnessQuorumNotReached) as short:
        client.checkpoint()
    assert short.value.metadata["cosigned"] == \
        members.federation.member(GD).witness_verifier_key
    assert members.push(BJ) == {GD: "cosigned"}  # its log grew by the refusals
    with members.sdk(BJ) as client:  # bj's version asks 1: gd's cosignature
        assert client.checkpoint().size == members.latest(BJ).tree_size
    with members.sdk(GD) as client:
        assert client.checkpoint().size == members.latest(GD).tree_size

    # It loads the current configuration: everything between bj and sh works.
    members.hold(BJ, current)
    assert bj.network.refresh()
    assert members.push(SH) == {GD: "up to date", BJ: "cosigned"}
    assert members.push(BJ)[SH] == "cosigned"  # gd cosigns its configuration_loaded event
    assert members.gateway(SH).replicator.pull()[BJ].endswith("0 refused")
    with members.sdk(SH) as client:
        assert client.checkpoint().size == members.latest(SH).tree_size


def test_a_peer_holding_a_configuration_naming_an_old_certificate(tmp_path: Path) -> None:
    """sh renews its TLS certificate, which version 2 names; bj still holds version 1, naming
    the old one. bj's calls to sh fail the handshake (bj pins the old certificate: what it
    would send a stand-in); sh's calls to bj are refused PEER_NOT_IN_NETWORK; gd, holding
    version 2, works with both. Both directions recover once bj takes version 2."""
    members = start_members(tmp_path, (GD, BJ, SH), started=0)
    try:
        members.hold(BJ, members.configuration_file.read_bytes())
        for gateway_id in (GD, BJ, SH):
            members.start(gateway_id)
        assert members.push(BJ)[SH] == "cosigned"
        members.stop(SH)
        renewed = members.federation.ca.issue_gateway(tmp_path / "renewed", SH)
        for name in (TLS_CERT, "tls.key"):
            shutil.copy2(renewed.folder / name, members.federation.folder(SH) / name)
        current = members.write_configuration(2)
        assert members.gateway(GD).network.refresh()
        members.start(SH)

        members.grow(BJ)
        assert members.push(BJ)[SH].startswith("UNAVAILABLE")
        assert members.gateway(BJ).replicator.pull()[SH].startswith("UNAVAILABLE")
        pushed = members.push(SH)
        assert pushed[GD] == "cosigned"
        assert pushed[BJ].startswith("PERMISSION_DENIED PEER_NOT_IN_NETWORK")
        assert "TLS certificate is not the one the network configuration version 1" in \
            pushed[BJ]
        assert members.gateway(GD).replicator.pull()[SH].endswith("0 refused")

        members.hold(BJ, current)
        assert members.gateway(BJ).network.refresh()
        assert members.push(BJ)[SH] == "cosigned"
        assert members.push(SH)[BJ] == "cosigned"
    finally:
        members.close()


def test_a_witness_down_leaves_the_quorum_rule_to_decide(tmp_path: Path) -> None:
    """Four members, a quorum of 2: with zj down, bj and sh reach the quorum for gd's log
    without it, and `audit verify` names them; with sh down too, the one cosignature left is
    short, and the SDK and `audit verify` name bj as the one that cosigned."""
    members = start_members(tmp_path, (GD, BJ, SH, ZJ), quorum=2, started=3)
    config = members.config_path(GD)
    try:
        pushed = members.push(GD)
        assert (pushed[BJ], pushed[SH]) == ("cosigned", "cosigned")
        assert pushed[ZJ].startswith("UNAVAILABLE")
        with members.sdk(GD) as client:
            assert client.checkpoint().size == members.latest(GD).tree_size
        verified = govshare(config, "audit", "verify", "--config", str(config))
        assert verified.returncode == 0, verified.stderr
        assert "cosigned by bj-gateway-witness, sh-gateway-witness (quorum 2)" in \
            verified.stdout

        members.stop(SH)
        members.grow(GD, 3)
        members.push(GD)
        bj_key = members.federation.member(BJ).witness_verifier_key
        with members.sdk(GD) as client, pytest.raises(WitnessQuorumNotReached) as short:
            client.checkpoint()
        assert short.value.metadata == {"cosigned": bj_key, "quorum": "2"}
        members.stop(GD)
        verified = govshare(config, "audit", "verify", "--config", str(config))
        assert verified.returncode == 1, verified.stderr
        assert f"cosigned by 1 of the policy's witnesses ({bj_key})" in verified.stderr
        assert "2 are needed" in verified.stderr
    finally:
        members.close()
