"""The witness's HTTP form, C2SP tlog-witness `POST /add-checkpoint`: real member gateways on
127.0.0.1, a real TLS client without a client certificate, real checkpoints and cosignatures."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import config as config_module
from gateway import evidence
from gateway.server import StartError, create_server
from gateway.storage import audit as audit_sql
from gateway.storage import witness as witness_sql
from gateway.witness import REFUSED
from govshare.signing import SigningKey
from govshare.transparency import note, record
from govshare.transparency.cosignature import WitnessPolicy
from govshare.transparency.witness import AddCheckpoint
from tests.support.exchange import wait_for
from tests.support.federation import Federation, Members, origin, start_members
from tests.support.refusals import SUMMARY, leaf_count, refused_leaves, summarised

LOG, WITNESS = "gd-gateway", "bj-gateway"


@pytest.fixture
def members(tmp_path: Path) -> Iterator[Members]:
    running = start_members(tmp_path / "net", witness_http=True)
    yield running
    running.close()


def post(members: Members, body: bytes, path: str = "/add-checkpoint",
         method: str = "POST") -> tuple[int, str, bytes]:
    """Status, content type and body of `body` sent to the witness over TLS, verified with the
    national CA, with no client certificate."""
    context = ssl.create_default_context(cafile=members.federation.root / "ca" / "ca.pem")
    port = members.servers[WITNESS].witness_http.port
    connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    try:
        connection.request(method, path, body)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), answer.read()
    finally:
        connection.close()


def checkpoint_of(members: Members, gateway_id: str) -> bytes:
    return bytes(members.gateway(gateway_id).log.checkpoint().note)


def events(members: Members, gateway_id: str) -> list[dict]:
    conn = members.gateway(gateway_id).db.reader()
    return [record.decode(data) for _, data in audit_sql.iter_records(conn)]


def test_a_checkpoint_posted_without_a_client_certificate_is_cosigned(
        members: Members) -> None:
    """Cosigned over HTTP as over gRPC: the witness's state moves to the checkpoint, and its log
    gains no event (a log recording its witnessing would never settle)."""
    signed = checkpoint_of(members, LOG)
    before = len(events(members, WITNESS))
    status, _, body = post(members, AddCheckpoint(0, (), signed).to_bytes())
    assert status == 200
    key = members.federation.member(WITNESS).witness_verifier_key
    WitnessPolicy([key], 1).check(signed + body)
    origin = note.unverified_text(signed).partition("\n")[0]
    state = witness_sql.witnessed_log(members.gateway(WITNESS).db.reader(), origin)
    assert state is not None and bytes(state.checkpoint) == signed
    assert len(events(members, WITNESS)) == before


def test_the_spec_answers_over_http(members: Members) -> None:
    signed = checkpoint_of(members, LOG)
    size = note.Checkpoint.parse(note.unverified_text(signed)).size
    assert post(members, AddCheckpoint(0, (), signed).to_bytes())[0] == 200

    assert post(members, AddCheckpoint(0, (), signed).to_bytes()) == (
        409, "text/x.tlog.size", b"%d\n" % size)
    assert post(members, b"not a request")[0] == 400
    assert post(members, AddCheckpoint(size + 1, (), signed).to_bytes())[0] == 400
    own = checkpoint_of(members, WITNESS)  # the witness's own log: no other member's
    assert post(members, AddCheckpoint(0, (), own).to_bytes())[0] == 404
    stranger = note.NoteSigner(note.unverified_text(signed).partition("\n")[0],
                               SigningKey.generate())  # the log's origin, another key
    forged = note.sign_note(note.unverified_text(signed), [stranger])
    assert post(members, AddCheckpoint(size, (), forged).to_bytes())[0] == 403
    members.gateway(LOG).work.append([record.Event("urn:govshare:gateway:x", "test.grow")])
    grown = checkpoint_of(members, LOG)
    assert post(members, AddCheckpoint(size, (b"\0" * 32,), grown).to_bytes())[0] == 422
    assert post(members, b"", method="GET")[0] == 405
    refused = [e for e in events(members, WITNESS) if e["action"] == "witness.add_checkpoint"]
    assert refused and all(e["outcome"] == record.REFUSED for e in refused)


def test_a_witness_http_port_taken_does_not_start_the_gateway(members: Members) -> None:
    members.stop(WITNESS)
    path = members.config_path(WITNESS)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = config_module.load(path).replace(
            network={"witness_http_listen": f"127.0.0.1:{taken.getsockname()[1]}"})
        with pytest.raises(StartError, match="witness_http_listen"):
            create_server(config)


def test_forged_checkpoints_over_http_are_refused_at_the_door_within_the_budget(
        members: Members) -> None:
    """Anyone may post over HTTP, naming a member's origin: a checkpoint its log's key did not
    sign is refused at the door, audited within the refusal budget, and never as one of the
    witness's committed decisions (which would let anyone write to the log at the request
    rate)."""
    signed = checkpoint_of(members, LOG)
    stranger = note.NoteSigner(note.unverified_text(signed).partition("\n")[0],
                               SigningKey.generate())
    forged = note.sign_note(note.unverified_text(signed), [stranger])
    limits = members.gateway(WITNESS).config.limits
    posts = 2 * limits.audited_refusals_burst
    began = time.monotonic()
    for _ in range(posts):
        assert post(members, AddCheckpoint(0, (), forged).to_bytes())[0] == 403
    refilled = limits.audited_refusals_per_second * (time.monotonic() - began)
    found = events(members, WITNESS)
    assert not [e for e in found if e["action"] == "witness.refused"]
    door = [e for e in found if e["action"] == "witness.add_checkpoint"]
    assert 0 < len(door) <= limits.audited_refusals_burst + refilled + 1


def test_an_unauthenticated_replay_writes_no_decision_in_the_members_name(
        tmp_path: Path) -> None:
    """Anyone can read a member's checkpoint and post it again without a certificate: each post
    is answered 409 as the spec says, audited as anonymous within the refusal budget and
    summarised beyond it, never as the member's."""
    members = Members(Federation(tmp_path / "net"), (LOG, WITNESS), witness_http=True,
                      overrides={"limits": {"audited_refusals_per_second": 0.001,
                                            "audited_refusals_burst": 3,
                                            "refusal_summary_seconds": 0.2}})
    try:
        for gateway_id in (LOG, WITNESS):
            members.start(gateway_id)
        signed = checkpoint_of(members, LOG)
        assert post(members, AddCheckpoint(0, (), signed).to_bytes())[0] == 200
        conn = members.gateway(WITNESS).db.reader()
        first = leaf_count(conn)
        for _ in range(60):
            assert post(members, AddCheckpoint(0, (), signed).to_bytes())[0] == 409
        assert wait_for(lambda: summarised(refused_leaves(conn, REFUSED, first))
                        == {"WITNESS_SIZE_CONFLICT": 57})
        records = [json.loads(text) for text in refused_leaves(conn, REFUSED, first)]
        assert len([r for r in records if not SUMMARY.search(r["reason"])]) == 3
        assert {r["actor"] for r in records} == {record.ANONYMOUS}
        assert leaf_count(conn) - first == len(records)
    finally:
        members.close()


def test_anonymous_junk_proofs_keep_no_evidence_and_leave_room_for_a_real_fork(
        members: Members) -> None:
    """A client posting a member's genuine checkpoints with junk proofs is refused 422, but a
    proof that fails is the sender's, not the log's: nothing is kept, however many it posts.
    A checkpoint the log's key signed of the size cosigned with another root is evidence
    whoever posts it: kept once with the note cosigned, as a fork found."""
    assert members.push(LOG)[WITNESS] == "cosigned"
    witness = members.gateway(WITNESS)
    cosigned = witness.witness.cosigned(origin(LOG))
    for _ in range(evidence.MAX_PER_SUBJECT + 1):
        members.grow(LOG, 1)
        junk = AddCheckpoint(cosigned.tree_size, (os.urandom(32),), checkpoint_of(members, LOG))
        assert post(members, junk.to_bytes())[0] == 422
    assert witness.evidence.found() == []
    assert members.push(LOG)[WITNESS] == "cosigned"  # the honest log goes on being cosigned

    size = witness.witness.cosigned(origin(LOG)).tree_size
    forked = members.signed_checkpoint(LOG, size, os.urandom(32))
    for _ in range(3):
        assert post(members, AddCheckpoint(size, (), forked).to_bytes())[0] == 422
    [kept] = witness.evidence.found()
    assert (kept.kind, kept.member, kept.second) == ("FORK_SAME_SIZE", LOG, forked)
    assert kept.first.startswith(witness.witness.cosigned(origin(LOG)).checkpoint)
    found = events(members, WITNESS)
    assert [e["actor"] for e in found if e["action"] == "network.fork_detected"] == [
        f"urn:govshare:gateway:{WITNESS}"]
    assert not [e for e in found if e["action"] == REFUSED
                and e["actor"] == f"urn:govshare:gateway:{LOG}"]
