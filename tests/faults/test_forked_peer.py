"""A forked peer: a member gateway showing one history of its log to some witnesses and another
to others, each side cosigned to its quorum, is caught by the other members comparing what
their peers cosigned (gateway/gossip.py); so is an authority signing two configurations of one
version. Real member gateways on 127.0.0.1, real signatures."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from gateway import evidence, gossip
from gateway.v1 import witness_pb2, witness_pb2_grpc
from govshare.signing import SigningKey
from govshare.transparency import note
from govshare.transparency.cosignature import CosignatureSigner, WitnessPolicy
from tests.support.commands import govshare
from tests.support.federation import Members, origin, peer_stub, start_members

GD, BJ, SH, ZJ = "gd-gateway", "bj-gateway", "sh-gateway", "zj-gateway"


def show_to_sh(members: Members, size: int) -> bytes:
    """gd's operator signs a checkpoint of its log of `size` with a root of another history and
    has sh, which never cosigned gd's log, cosign it."""
    forged = members.signed_checkpoint(GD, size, os.urandom(32))
    channel, stub = peer_stub(members.federation.folder(GD), members.target(SH))
    with channel:
        stub.AddCheckpoint(witness_pb2.AddCheckpointRequest(old_size=0, checkpoint=forged),
                           timeout=10)
    return forged


def found(members: Members, gateway_id: str) -> list:
    return members.gateway(gateway_id).evidence.found()


@pytest.fixture
def forked(tmp_path: Path):
    """Four members, a quorum of 1 (1 of 3: two disjoint witness sets can each reach it). gd
    pushed its log to bj alone (sh and zj were down); zj has cosigned nothing of gd's log."""
    members = start_members(tmp_path, (GD, BJ, SH, ZJ), started=2)
    try:
        members.grow(GD, 3)
        assert members.push(GD)[BJ] == "cosigned"
        members.start(SH)
        members.start(ZJ)
        yield members
    finally:
        members.close()


@pytest.mark.parametrize(("shown", "kind"), [
    pytest.param(lambda size: size, evidence.FORK_SAME_SIZE, id="same-size-other-root"),
    pytest.param(lambda size: size + 50, evidence.FORK_NOT_CONSISTENT, id="beyond-the-log"),
    pytest.param(lambda size: size + 2, evidence.FORK_NOT_CONSISTENT, id="other-root-inside"),
])
def test_a_log_forked_to_disjoint_witnesses_is_caught_by_their_peers(
        forked: Members, tmp_path: Path, shown, kind: str) -> None:
    members = forked
    cosigned_by_bj = members.gateway(BJ).witness.cosigned(origin(GD))
    members.grow(GD, 10)  # gd's log goes on past both sizes shown
    forged = show_to_sh(members, shown(cosigned_by_bj.tree_size))
    # Each history reaches the quorum of 1 alone: a client of either is none the wiser.
    with members.sdk(GD) as client:
        client.checkpoint()

    # zj cosigned none of them: it compares bj's entry with sh's. bj compares its own with
    # sh's. gd finds a checkpoint of its own log that its log, grown past it, does not extend.
    for gateway_id, expected in ((ZJ, kind), (BJ, kind), (GD, evidence.FORK_NOT_CONSISTENT)):
        outcomes = members.gateway(gateway_id).gossip.round()
        assert sum(" 1 forks found" in outcome for outcome in outcomes.values()) == 1, outcomes
        [kept] = found(members, gateway_id)
        assert (kept.kind, kept.subject, kept.member) == (expected, origin(GD), GD)
        assert "network.fork_detected" in members.actions(gateway_id)
    [kept] = found(members, ZJ)
    assert {kept.first_from, kept.second_from} == {BJ, SH}
    # The evidence stands on its own: both notes are signed with gd's audit key, and each
    # cosigned by the witness it names.
    audit_key = note.NoteVerifier.from_verifier_key(members.federation.member(GD)
                                                    .audit_verifier_key)
    for statement, witness in ((kept.first, kept.first_from), (kept.second, kept.second_from)):
        note.open_note(statement, [audit_key])
        WitnessPolicy([members.federation.member(witness).witness_verifier_key], 1
                      ).check(statement)
    assert forged.split(b"\n\n")[0] in (kept.first + kept.second)

    # Found once: the next round keeps and audits nothing more.
    members.gateway(ZJ).gossip.round()
    assert len(found(members, ZJ)) == 1
    assert members.actions(ZJ).count("network.fork_detected") == 1

    config = members.config_path(ZJ)
    status = govshare(config, "network", "status", "--config", str(config), "--json")
    assert status.returncode == 1, status.stderr
    reported = json.loads(status.stdout)
    [item] = reported["evidence"]
    assert item["kind"] == kind and base64.b64decode(item["first"]) == kept.first


def test_an_honest_network_gossips_without_evidence(tmp_path: Path) -> None:
    """Witnesses that cosigned a log at different sizes are proved consistent by the log, and
    every member's round finds nothing; `network status` exits 0."""
    members = start_members(tmp_path, (GD, BJ, SH))
    try:
        for gateway_id in (GD, BJ, SH):
            members.push(gateway_id)
        members.stop(SH)
        members.grow(GD, 5)
        members.push(GD)  # bj is ahead of sh on gd's log
        members.start(SH)
        for gateway_id in (GD, BJ, SH):
            outcomes = members.gateway(gateway_id).gossip.round()
            for outcome in outcomes.values():
                assert " 0 forks found; the same configuration, version 1" in outcome, outcomes
            assert found(members, gateway_id) == []
        config = members.config_path(BJ)
        status = govshare(config, "network", "status", "--config", str(config))
        assert status.returncode == 0, status.stderr
        assert "No evidence of a fork" in status.stdout
        assert origin(GD) in status.stdout
    finally:
        members.close()


def test_a_configuration_signed_twice_for_one_version_is_caught(tmp_path: Path) -> None:
    """The authority gives gd one version 2 and bj another: gd's round shows bj stale while it
    holds version 1, then keeps the two versions 2 as evidence, audited."""
    members = start_members(tmp_path, (GD, BJ, SH), started=0)
    try:
        members.hold(BJ, members.configuration_file.read_bytes())
        members.start(GD)
        members.start(BJ)
        members.write_configuration(2)
        assert members.gateway(GD).network.refresh()
        assert "it holds version 1, older than this gateway's 2" in \
            members.gateway(GD).gossip.round()[BJ]

        members.hold(BJ, members.write_configuration(2))  # signed again: other bytes
        assert members.gateway(BJ).network.refresh()
        assert "another configuration of version 2: evidence kept" in \
            members.gateway(GD).gossip.round()[BJ]
        [kept] = found(members, GD)
        assert (kept.kind, kept.first_from, kept.second_from) == (
            evidence.CONFIGURATION_EQUIVOCATION, GD, BJ)
        assert "network.configuration_equivocation" in members.actions(GD)
    finally:
        members.close()


class _Lying(witness_pb2_grpc.WitnessServiceServicer):
    """A member gone bad, listing what it is given as the checkpoints it cosigned, on one page
    or (`endless`) on pages each announcing another; `pages` counts the pages served."""

    def __init__(self, entries: list[witness_pb2.WitnessedCheckpoint], endless: bool = False):
        self.entries = entries
        self.endless = endless
        self.pages = 0

    def ListWitnessedCheckpoints(self, request, context):
        self.pages += 1
        return witness_pb2.ListWitnessedCheckpointsResponse(
            witnessed_checkpoints=self.entries,
            next_page_token=os.urandom(8).hex() if self.endless else "")


@contextlib.contextmanager
def serving_instead(members: Members, gateway_id: str,
                    servicer: witness_pb2_grpc.WitnessServiceServicer) -> Iterator[None]:
    """`servicer` answering at member `gateway_id`'s address with its certificates, as its
    operator could make it answer."""
    folder = members.federation.folder(gateway_id)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    witness_pb2_grpc.add_WitnessServiceServicer_to_server(servicer, server)
    server.add_secure_port(members.target(gateway_id), grpc.ssl_server_credentials(
        [((folder / "tls.key").read_bytes(), (folder / "tls.pem").read_bytes())],
        (folder / "ca.pem").read_bytes(), True))
    server.start()
    try:
        yield
    finally:
        server.stop(None)


def test_a_witness_listing_checkpoints_it_did_not_cosign_is_refused_within_a_budget(
        tmp_path: Path) -> None:
    """sh's server lists 30 checkpoints of gd's log cosigned by a key that is not sh's: bj's
    round refuses each, auditing the first MAX_AUDITED_REFUSALS and one summary, keeps no
    evidence from them, and audits nothing more when they are listed again."""
    members = start_members(tmp_path, (GD, BJ, SH), started=2)
    stranger = CosignatureSigner("sh-gateway-witness", SigningKey.generate())
    entries = []
    for size in range(1, 31):
        signed = members.signed_checkpoint(GD, size, os.urandom(32))
        text = note.unverified_text(signed).encode()
        entries.append(witness_pb2.WitnessedCheckpoint(
            origin=origin(GD), checkpoint=signed + stranger.cosign(text, 1).encode()))
    try:
        with serving_instead(members, SH, _Lying(entries)):
            outcome = members.gateway(BJ).gossip.round()[SH]
            assert outcome.startswith("0 checkpoints compared, 0 forks found; UNIMPLEMENTED")
            assert members.actions(BJ).count(gossip.REFUSED) == gossip.MAX_AUDITED_REFUSALS + 1
            assert found(members, BJ) == []
            members.gateway(BJ).gossip.round()  # listed again: each entry is audited once
            assert members.actions(BJ).count(gossip.REFUSED) == gossip.MAX_AUDITED_REFUSALS + 1
    finally:
        members.close()


def cosigned_by(members: Members, witness_id: str, signed: bytes) -> bytes:
    """`signed` cosigned with `witness_id`'s witness key, as its operator can cosign anything."""
    signer = CosignatureSigner(f"{witness_id}-witness", SigningKey.load(
        members.federation.folder(witness_id) / "witness.key"))
    return signed + signer.cosign(note.unverified_text(signed).encode(), 1).encode()


def test_a_member_listing_many_old_checkpoints_of_one_log_does_not_starve_the_comparisons(
        tmp_path: Path) -> None:
    """bj's operator, siding with gd, lists 20 genuine old checkpoints of gd's log cosigned with
    bj's witness key, to spend zj's proofs before sh's entry, which shows the fork, is reached.
    A witness lists one checkpoint per log: zj keeps bj's largest, refuses the others (audited,
    once), and finds the fork in the same round."""
    members = start_members(tmp_path, (GD, BJ, SH, ZJ), started=0)
    try:
        members.start(GD)
        members.start(ZJ)
        old = []
        for _ in range(20):
            members.grow(GD, 1)
            old.append(bytes(members.gateway(GD).log.checkpoint().note))
        assert members.push(GD)[ZJ] == "cosigned"
        cosigned = members.gateway(ZJ).witness.cosigned(origin(GD)).tree_size
        members.grow(GD, 10)
        members.start(SH)
        show_to_sh(members, cosigned + 2)
        entries = [witness_pb2.WitnessedCheckpoint(origin=origin(GD),
                                                   checkpoint=cosigned_by(members, BJ, signed))
                   for signed in old]
        with serving_instead(members, BJ, _Lying(entries)):
            outcomes = members.gateway(ZJ).gossip.round()
            assert outcomes[SH].startswith("1 checkpoints compared, 1 forks found"), outcomes
            assert outcomes[BJ].startswith("1 checkpoints compared, 0 forks found"), outcomes
            [kept] = found(members, ZJ)
            assert {kept.first_from, kept.second_from} == {ZJ, SH}
            assert members.actions(ZJ).count(gossip.REFUSED) == 19
            members.gateway(ZJ).gossip.round()
            assert members.actions(ZJ).count(gossip.REFUSED) == 19
    finally:
        members.close()


def test_comparisons_beyond_the_proof_budget_are_left_for_the_next_round(
        forked: Members, monkeypatch: pytest.MonkeyPatch) -> None:
    """With one proof a round, zj's two comparisons that need one (its own log, which its
    witnesses cosigned before it grew, and gd's log as sh cosigned it) take two rounds: the one
    not proved is counted as left for the next round, not as compared, and the fork is found
    by the second round."""
    members = forked
    monkeypatch.setattr(gossip, "MAX_PROOFS", 1)
    members.grow(ZJ, 2)
    members.push(ZJ)
    members.grow(ZJ, 2)
    show_to_sh(members, members.gateway(BJ).witness.cosigned(origin(GD)).tree_size + 2)
    first = members.gateway(ZJ).gossip.round()
    left = [int(re.search(r"(\d+) left for the next round", o)[1]) for o in first.values()
            if "left" in o]
    assert left == [1], first
    if not found(members, ZJ):
        members.gateway(ZJ).gossip.round()
    [kept] = found(members, ZJ)
    assert kept.kind == evidence.FORK_NOT_CONSISTENT


def test_oversized_pages_are_refused_unread_and_audited_once(tmp_path: Path) -> None:
    """A member answering with pages of 40,000 entries and always another page: each round
    reads one page, refuses it unread (one `gossip.refused`, audited once however often it is
    served), and moves on."""
    members = start_members(tmp_path, (GD, BJ, SH), started=2)
    junk = [witness_pb2.WitnessedCheckpoint(origin=origin(GD), checkpoint=os.urandom(60))
            for _ in range(40_000)]
    lying = _Lying(junk, endless=True)
    try:
        with serving_instead(members, SH, lying):
            for rounds in range(1, 4):
                outcome = members.gateway(BJ).gossip.round()[SH]
                assert outcome.startswith("0 checkpoints compared"), outcome
                assert lying.pages == rounds
        refused = [e for e in members.actions(BJ) if e == gossip.REFUSED]
        assert len(refused) == 1
    finally:
        members.close()
