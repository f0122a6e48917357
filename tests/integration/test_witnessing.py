"""Gateways of one network witness each other's audit logs: real member gateways on 127.0.0.1,
real mutual TLS between them, real cosignatures, each in its own SQLite database."""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from agencies.client import BaseClient
from agencies.errors import VerificationError, WitnessQuorumNotReached, from_rpc_error
from gateway import evidence
from gateway.models import WitnessedLog
from gateway.storage import audit as audit_sql
from gateway.storage import witness as witness_sql
from gateway.v1 import audit_pb2, witness_pb2
from gateway.witness import MAX_CHECKPOINT_BYTES
from govshare.signing import SigningKey
from govshare.transparency import note
from govshare.transparency.cosignature import CosignatureSigner, WitnessPolicy
from tests.support.commands import govshare
from tests.support.exchange import wait_for
from tests.support.federation import (
    Federation,
    Members,
    origin,
    peer_stub,
    start_members,
)
from tests.support.refusals import SUMMARY, leaf_count, refused_leaves, summarised

LOG, WITNESS = "gd-gateway", "bj-gateway"


@pytest.fixture
def members(tmp_path: Path) -> Iterator[Members]:
    running = start_members(tmp_path / "net")
    yield running
    running.close()


def witness_policy(members: Members, *ids: str, quorum: int = 1) -> WitnessPolicy:
    keys = {m.id: m.witness_verifier_key for m in members.members()}
    return WitnessPolicy([keys[i] for i in ids], quorum)


def witnessed_log(members: Members, witness_id: str, log_id: str) -> WitnessedLog | None:
    """What `witness_id` last cosigned of `log_id`'s log."""
    return witness_sql.witnessed_log(members.gateway(witness_id).db.reader(), origin(log_id))


def test_a_peer_cosigns_a_growing_log(members: Members) -> None:
    assert members.push(LOG) == {WITNESS: "cosigned"}
    first = members.latest(LOG)
    [cosigned] = witness_policy(members, WITNESS).check(first.signed_checkpoint.encode())
    assert cosigned.witness == witness_policy(members, WITNESS).witnesses[0]
    assert note.open_note(first.signed_checkpoint.encode(),
                          [note.NoteVerifier.from_verifier_key(first.verifier_key)])

    members.grow(LOG, 3)
    assert "test.grow" in members.actions(LOG)
    assert members.push(LOG) == {WITNESS: "cosigned"}
    second = members.latest(LOG)
    assert second.tree_size > first.tree_size
    witness_policy(members, WITNESS).check(second.signed_checkpoint.encode())
    assert members.push(LOG) == {WITNESS: "up to date"}
    # The witness keeps what it cosigned as its state, not in its log.
    witnessed = witnessed_log(members, WITNESS, LOG)
    assert (witnessed.tree_size, witnessed.checkpoint) == (
        second.tree_size, bytes(members.gateway(LOG).log.checkpoint().note))
    assert "witness.cosigned" not in members.actions(WITNESS)


def test_a_witness_down_then_up_catches_up(members: Members) -> None:
    members.stop(WITNESS)
    [outcome] = members.push(LOG).values()
    assert outcome.startswith("UNAVAILABLE")
    members.grow(LOG)
    with pytest.raises(Exception, match="cosigned"):
        witness_policy(members, WITNESS).check(members.latest(LOG).signed_checkpoint.encode())

    members.start(WITNESS)
    assert members.push(LOG) == {WITNESS: "cosigned"}
    witness_policy(members, WITNESS).check(members.latest(LOG).signed_checkpoint.encode())


def test_a_gateway_restarted_on_an_older_database_is_refused_by_its_witness(
        members: Members, tmp_path: Path) -> None:
    assert members.push(LOG) == {WITNESS: "cosigned"}
    backed_up = members.latest(LOG).tree_size
    folder = members.federation.folder(LOG)
    members.stop(LOG)
    backup = folder.parent / "backup"
    shutil.copytree(folder, backup)
    members.start(LOG)
    members.grow(LOG, 2)
    assert members.push(LOG) == {WITNESS: "cosigned"}
    with members.sdk(LOG) as client:
        assert client.checkpoint().size > backed_up
    members.stop(LOG)

    # The operator puts back the backup (database, checkpoint file, blobs): the log goes
    # back, then grows its own way beyond what the witness cosigned.
    shutil.rmtree(folder)
    shutil.copytree(backup, folder)
    members.start(LOG)
    members.grow(LOG, 10)
    [outcome] = members.push(LOG).values()
    assert "FAILED_PRECONDITION WITNESS_CONSISTENCY_UNPROVED" in outcome

    # Refused and audited; the witness keeps no evidence of a proof that fails (it cannot
    # tell a log gone back from a sender's bad proof): the members' gossip, below, asks the log.
    assert "witness.refused" in members.actions(WITNESS)
    assert members.gateway(WITNESS).evidence.found() == []
    # The witness's operator sees the refusals in `network status`, which still exits 0:
    # its exit code is for evidence only.
    config = members.config_path(WITNESS)
    status = govshare(config, "network", "status", "--config", str(config), "--json")
    assert status.returncode == 0, status.stderr
    refused = json.loads(status.stdout)["refused"]
    assert {row["origin"] for row in refused} == {origin(LOG)}
    assert {"origin": origin(LOG), "reason": "WITNESS_CONSISTENCY_UNPROVED",
            "refusals": 1} in refused
    shown = govshare(config, "network", "status", "--config", str(config)).stdout
    assert "WITNESS_CONSISTENCY_UNPROVED" in shown and "No evidence of a fork" in shown
    with pytest.raises(Exception, match="0 of the policy's witnesses"):
        witness_policy(members, WITNESS).check(members.latest(LOG).signed_checkpoint.encode())
    # The restored gateway's own gossip finds its witness holding what its log does not extend.
    members.gateway(LOG).gossip.round()
    [kept] = members.gateway(LOG).evidence.found()
    assert (kept.kind, kept.first_from, kept.second_from) == ("FORK_NOT_CONSISTENT", WITNESS, LOG)
    # The SDK with the policy takes only checkpoints witnessed: a client that saw the lost
    # history's catches the fork; a new one gets the last checkpoint witnessed before the backup.
    with members.sdk(LOG) as client, pytest.raises(VerificationError) as forked:
        client.checkpoint()
    assert forked.value.reason == "LOG_FORKED"
    with members.sdk(LOG, tmp_path / "new-client.json") as client:
        assert client.checkpoint().size == backed_up


def test_a_quorum_not_reached_fails_verification(tmp_path: Path) -> None:
    members = start_members(tmp_path / "net", ("gd-gateway", "bj-gateway", "sh-gateway"),
                            quorum=2)
    try:
        with members.sdk(LOG) as client, pytest.raises(WitnessQuorumNotReached) as none:
            client.checkpoint()
        assert none.value.metadata == {"cosigned": "", "quorum": "2"}

        members.stop("sh-gateway")
        outcomes = members.push(LOG)
        assert outcomes[WITNESS] == "cosigned"
        assert outcomes["sh-gateway"].startswith("UNAVAILABLE")
        bj_key = members.federation.member(WITNESS).witness_verifier_key
        with members.sdk(LOG) as client, pytest.raises(WitnessQuorumNotReached) as refused:
            client.checkpoint()
        assert refused.value.metadata == {"cosigned": bj_key, "quorum": "2"}
        assert bj_key in refused.value.message

        members.start("sh-gateway")
        assert members.push(LOG)["sh-gateway"] == "cosigned"
        with members.sdk(LOG) as client:
            assert client.checkpoint().size == members.latest(LOG).tree_size
    finally:
        members.close()


def test_a_round_asks_every_witness_for_the_same_checkpoint_while_the_log_grows(
        tmp_path: Path) -> None:
    witnesses = (WITNESS, "sh-gateway", "xj-gateway")
    members = start_members(tmp_path / "net", (LOG, *witnesses), quorum=2)
    try:
        members.push(LOG)  # the witnesses know the log: the round below sends proofs
        grown, done = threading.Event(), threading.Event()
        grower = threading.Thread(target=_grow_until, args=(members, grown, done))
        grower.start()
        try:
            grown.wait(timeout=10)
            outcomes = members.push(LOG)
        finally:
            done.set()
            grower.join()

        assert outcomes == dict.fromkeys(witnesses, "cosigned")
        conn = members.gateway(LOG).db.reader()
        sizes = witness_sql.latest_cosigned_sizes(conn, origin(LOG))
        assert len(set(sizes.values())) == 1, f"witnesses cosigned different sizes: {sizes}"
        size = sizes[WITNESS]
        answered = sorted(c.create_time for c in witness_sql.cosignatures(conn, origin(LOG), size))
        assert len(answered) == len(witnesses)
        # The log signed newer checkpoints while the witnesses answered, one after the other.
        assert any(answered[0] < checkpoint.create_time < answered[-1]
                   for checkpoint in audit_sql.checkpoints(conn))
    finally:
        members.close()


def _grow_until(members: Members, grown: threading.Event, done: threading.Event) -> None:
    """Grow the log, one checkpoint after another, setting `grown` after the first."""
    while not done.is_set():
        members.grow(LOG)
        grown.set()


def test_a_gateway_certificate_not_in_the_configuration_is_denied(members: Members) -> None:
    outsider = members.federation.folder("sh-gateway")  # issued by the CA, not a member
    channel, stub = peer_stub(outsider, members.target(WITNESS))
    with channel, pytest.raises(grpc.RpcError) as refused:
        stub.AddCheckpoint(witness_pb2.AddCheckpointRequest(checkpoint=b"x"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert from_rpc_error(refused.value).reason == "PEER_NOT_IN_NETWORK"


def test_a_peer_gets_the_spec_answers(members: Members) -> None:
    log_gateway = members.gateway(LOG)
    signed = bytes(log_gateway.log.checkpoint().note)
    channel, stub = peer_stub(members.federation.folder(LOG), members.target(WITNESS))
    with channel:
        def refusal(request: witness_pb2.AddCheckpointRequest) -> tuple[str, str, dict]:
            with pytest.raises(grpc.RpcError) as refused:
                stub.AddCheckpoint(request, timeout=10)
            info = from_rpc_error(refused.value)
            return refused.value.code().name, info.reason, dict(info.metadata)

        assert refusal(witness_pb2.AddCheckpointRequest(checkpoint=b"not a note"))[:2] == (
            "INVALID_ARGUMENT", "WITNESS_REQUEST_MALFORMED")
        assert refusal(witness_pb2.AddCheckpointRequest(old_size=1, checkpoint=signed))[:2] == (
            "ABORTED", "WITNESS_SIZE_CONFLICT")
        other = bytes(members.gateway(WITNESS).log.checkpoint().note)  # the witness's own log
        assert refusal(witness_pb2.AddCheckpointRequest(checkpoint=other))[:2] == (
            "NOT_FOUND", "WITNESS_UNKNOWN_LOG")
        ok = stub.AddCheckpoint(witness_pb2.AddCheckpointRequest(checkpoint=signed), timeout=10)
        assert ok.cosignature.startswith("\u2014 bj-gateway-witness ")
        code, reason, metadata = refusal(witness_pb2.AddCheckpointRequest(checkpoint=signed))
        size = note.Checkpoint.parse(note.unverified_text(signed)).size
        assert (code, reason, metadata["witness_size"]) == ("ABORTED", "WITNESS_SIZE_CONFLICT",
                                                            str(size))
    with BaseClient(members.target(WITNESS), members.federation.folder(LOG),
                    server_name="localhost") as peer, pytest.raises(grpc.RpcError) as refused:
        peer.audit.ListAuditEvents(audit_pb2.ListAuditEventsRequest(), timeout=10)
    assert from_rpc_error(refused.value).reason == "ROLE_NOT_ALLOWED"


def test_audit_verify_checks_the_witness_policy_of_a_member(tmp_path: Path) -> None:
    members = start_members(tmp_path / "net", ("gd-gateway", "bj-gateway", "sh-gateway"),
                            quorum=2)
    config = members.config_path(LOG)
    try:
        members.stop("sh-gateway")
        assert members.push(LOG)[WITNESS] == "cosigned"
        members.stop(LOG)
        refused = govshare(config, "audit", "verify", "--config", str(config))
        assert refused.returncode == 1, refused.stderr
        assert "NOT WITNESSED" in refused.stderr and "bj-gateway-witness" in refused.stderr
        assert "2 are needed" in refused.stderr

        members.start("sh-gateway")
        members.start(LOG)
        assert members.push(LOG)["sh-gateway"] == "cosigned"
        members.stop(LOG)
        for flags in ((), ("--network-configuration",
                           str(members.federation.root / "network.pb"))):
            passed = govshare(config, "audit", "verify", "--config", str(config), *flags)
            assert passed.returncode == 0, passed.stderr
            assert "cosigned by bj-gateway-witness, sh-gateway-witness (quorum 2)" in \
                passed.stdout
    finally:
        members.close()


def test_a_stand_in_witness_with_another_ca_issued_certificate_is_not_called(
        members: Members) -> None:
    """A server at the witness's address with a certificate the national CA issued to another
    gateway would pass a CA check: the log pins the witness's own configuration certificate,
    so the handshake fails and nothing is sent to the stand-in."""
    members.stop(WITNESS)
    other = members.federation.folder("sh-gateway")  # CA-issued, for 127.0.0.1 as well
    stand_in = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    stand_in.add_secure_port(members.target(WITNESS), grpc.ssl_server_credentials(
        [((other / "tls.key").read_bytes(), (other / "tls.pem").read_bytes())]))
    stand_in.start()
    try:
        [outcome] = members.push(LOG).values()
    finally:
        stand_in.stop(None)
    assert outcome.startswith("UNAVAILABLE"), outcome  # not UNIMPLEMENTED: never reached it

    members.start(WITNESS)  # the member itself, with its own certificate, is called
    assert members.push(LOG) == {WITNESS: "cosigned"}


def _log_key_line(members: Members) -> str:
    """A signature line under the log's own key name and key id, with a zero signature."""
    name, key_id, _ = members.federation.member(LOG).audit_verifier_key.split("+", 2)
    blob = bytes.fromhex(key_id) + bytes(64)
    return f"\u2014 {name} {base64.b64encode(blob).decode()}\n"


def _other_witness_line(members: Members) -> str:
    """A cosignature-shaped line naming a witness that is no member of this network."""
    verifier = CosignatureSigner("sh-gateway-witness", SigningKey.generate()).verifier()
    blob = verifier.key_id + bytes(8 + 64)
    return f"\u2014 {verifier.name} {base64.b64encode(blob).decode()}\n"


@pytest.mark.parametrize("spoil", [
    pytest.param(lambda members, line: line + _log_key_line(members), id="log-key-line"),
    pytest.param(lambda members, line: line + _other_witness_line(members), id="other-witness"),
    pytest.param(lambda members, line: line * 120, id="too-many-lines"),
    pytest.param(lambda members, line: _other_witness_line(members), id="not-its-key"),
])
def test_a_witness_answer_with_extra_lines_is_not_stored(
        members: Members, monkeypatch: pytest.MonkeyPatch, spoil) -> None:
    """A witness answering its real cosignature line with more lines, or another key's line,
    gets nothing stored: the served checkpoint stays verifiable for every client."""
    witness = members.gateway(WITNESS).witness
    honest = witness.add_checkpoint
    monkeypatch.setattr(witness, "add_checkpoint",
                        lambda *args: spoil(members, honest(*args)))
    [outcome] = members.push(LOG).values()
    assert outcome.startswith("its answer is not its cosignature of the checkpoint")
    signed = members.latest(LOG).signed_checkpoint
    assert signed == bytes(members.gateway(LOG).log.checkpoint().note).decode()
    with members.sdk(LOG) as client, pytest.raises(WitnessQuorumNotReached):
        client.checkpoint()

    monkeypatch.undo()
    members.grow(LOG)
    assert members.push(LOG) == {WITNESS: "cosigned"}
    signed = members.latest(LOG).signed_checkpoint
    assert signed.count("\u2014 ") == 2  # the log's signature and the one cosignature
    with members.sdk(LOG) as client:
        assert client.checkpoint().size == members.latest(LOG).tree_size


def test_witnessing_settles_without_traffic(members: Members, tmp_path: Path) -> None:
    """Each member cosigns the other's log, and the logs stop growing: a cosignature writes no
    event, so it makes no checkpoint for the other member to cosign."""
    def sizes() -> tuple[int, int]:
        return members.latest(LOG).tree_size, members.latest(WITNESS).tree_size

    for _ in range(2):
        members.push(LOG)
        members.push(WITNESS)
    settled = sizes()
    for _ in range(3):
        assert members.push(LOG) == {WITNESS: "up to date"}
        assert members.push(WITNESS) == {LOG: "up to date"}
    assert sizes() == settled
    for gateway_id in (LOG, WITNESS):
        with members.sdk(gateway_id, tmp_path / f"{gateway_id}.json") as client:
            assert client.checkpoint().size == members.latest(gateway_id).tree_size


def test_a_log_signing_two_trees_of_the_size_cosigned_is_kept_as_evidence_each_pair_once(
        members: Members) -> None:
    """A witness refuses notes above its bound before reading them. A checkpoint the log's key
    signed of the size cosigned with another root is evidence: kept with the note cosigned as a
    FORK_SAME_SIZE pair, each pair once and at most MAX_PER_SUBJECT a log, audited with the
    refusal. A proof that fails keeps nothing: it is the sender's, not the log's."""
    log_origin = origin(LOG)
    channel, stub = peer_stub(members.federation.folder(LOG), members.target(WITNESS))
    with channel:
        huge = b"x" * (MAX_CHECKPOINT_BYTES + 1)
        with pytest.raises(grpc.RpcError) as refused:
            stub.AddCheckpoint(witness_pb2.AddCheckpointRequest(checkpoint=huge), timeout=10)
        info = from_rpc_error(refused.value)
        assert (refused.value.code(), info.reason, info.metadata["max_bytes"]) == (
            grpc.StatusCode.INVALID_ARGUMENT, "WITNESS_CHECKPOINT_TOO_LARGE",
            str(MAX_CHECKPOINT_BYTES))
        assert str(MAX_CHECKPOINT_BYTES) in refused.value.details()

        assert members.push(LOG) == {WITNESS: "cosigned"}
        cosigned = bytes(members.gateway(LOG).log.checkpoint().note)
        size = note.Checkpoint.parse(note.unverified_text(cosigned)).size

        def send(signed: bytes, proof: tuple[bytes, ...] = ()) -> None:
            request = witness_pb2.AddCheckpointRequest(old_size=size, consistency_proof=proof,
                                                       checkpoint=signed)
            with pytest.raises(grpc.RpcError) as refused:
                stub.AddCheckpoint(request, timeout=10)
            assert from_rpc_error(refused.value).reason == "WITNESS_CONSISTENCY_UNPROVED"

        other_tree = members.signed_checkpoint(LOG, size, os.urandom(32))
        for _ in range(3):
            send(other_tree)
        for extra in range(1, 4):
            send(members.signed_checkpoint(LOG, size + extra, os.urandom(32)), (os.urandom(32),))
        witness = members.gateway(WITNESS)
        [kept] = witness.evidence.found()
        assert (kept.kind, kept.subject, kept.member) == ("FORK_SAME_SIZE", log_origin, LOG)
        assert kept.second == other_tree and kept.first.startswith(cosigned)
        witness_policy(members, WITNESS).check(kept.first)  # cosigned by this witness
        for _ in range(evidence.MAX_PER_SUBJECT + 2):
            send(members.signed_checkpoint(LOG, size, os.urandom(32)))
    assert len(witness.evidence.found()) == evidence.MAX_PER_SUBJECT
    audited = members.actions(WITNESS)
    assert audited.count("network.fork_detected") == evidence.MAX_PER_SUBJECT
    # Each refusal audited: with its evidence, or within the log's budget of refusals.
    assert audited.count("witness.refused") == 1 + 3 + 3 + evidence.MAX_PER_SUBJECT + 2


def test_a_peers_replayed_checkpoints_are_audited_within_its_budget(tmp_path: Path) -> None:
    """A peer sending its genuine checkpoint again and again is refused each time (409), but
    audited one by one only within its budget of refusals, and summarised beyond it."""
    members = Members(Federation(tmp_path / "net"), (LOG, WITNESS), overrides={"limits": {
        "audited_refusals_per_second": 0.001, "audited_refusals_burst": 3,
        "refusal_summary_seconds": 0.2}})
    try:
        for gateway_id in (LOG, WITNESS):
            members.start(gateway_id)
        assert members.push(LOG) == {WITNESS: "cosigned"}
        replayed = witness_pb2.AddCheckpointRequest(
            old_size=0, checkpoint=bytes(members.gateway(LOG).log.checkpoint().note))
        conn = members.gateway(WITNESS).db.reader()
        first = leaf_count(conn)
        channel, stub = peer_stub(members.federation.folder(LOG), members.target(WITNESS))
        with channel:
            for _ in range(50):
                with pytest.raises(grpc.RpcError) as refused:
                    stub.AddCheckpoint(replayed, timeout=10)
                assert refused.value.code() == grpc.StatusCode.ABORTED
        assert wait_for(lambda: summarised(refused_leaves(conn, "witness.refused", first))
                        == {"WITNESS_SIZE_CONFLICT": 47})
        records = [json.loads(text) for text in refused_leaves(conn, "witness.refused", first)]
        assert len([r for r in records if not SUMMARY.search(r["reason"])]) == 3
        assert {r["actor"] for r in records} == {f"urn:govshare:gateway:{LOG}"}
        assert leaf_count(conn) - first == len(records)
    finally:
        members.close()
