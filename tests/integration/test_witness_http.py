"""The witness's HTTP form, C2SP tlog-witness `POST /add-checkpoint`: real member gateways on
127.0.0.1, a real TLS client without a client certificate, real checkpoints and cosignatures."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import config as config_module
from gateway.server import StartError, create_server
from gateway.storage import audit as audit_sql
from gateway.storage import witness as witness_sql
from govshare.signing import SigningKey
from govshare.transparency import note, record
from govshare.transparency.cosignature import WitnessPolicy
from govshare.transparency.witness import AddCheckpoint
from tests.support.federation import Members, start_members

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
