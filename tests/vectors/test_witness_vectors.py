"""C2SP tlog-cosignature and tlog-witness checked against published vectors (sum.golang.org,
transparency-dev, sigsum-go, torchwood) and the spec's examples: data/witness/, PROVENANCE.md."""

from __future__ import annotations

from typing import Any

import pytest

from govshare.signing import SigningKey
from govshare.transparency.cosignature import (
    Cosignature,
    CosignatureSigner,
    CosignatureVerifier,
    WitnessCosignature,
    WitnessPolicy,
    cosigned_message,
)
from govshare.transparency.note import (
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    UnknownKeyError,
    open_note,
    signing_keys,
    unverified_text,
    verify_note,
)
from govshare.transparency.witness import (
    NEVER_COSIGNED,
    AddCheckpoint,
    MalformedRequest,
    SizeConflict,
    TreeHead,
    Witness,
    WitnessedLog,
    WitnessRefusal,
)

Vector = dict[str, Any]


def _signer(key: Vector, name: str) -> CosignatureSigner:
    return CosignatureSigner(name, SigningKey.from_seed(bytes.fromhex(key["seed_hex"])))


def _answer(witness: Witness, body: str, last: TreeHead, now: int) -> tuple[int, str, TreeHead]:
    """What the HTTP form answers, as (status, body, tree head the witness then holds)."""
    try:
        cosigned = witness.add_checkpoint(AddCheckpoint.parse(body.encode()), last, now)
    except SizeConflict as conflict:
        return conflict.http_status, conflict.body.decode(), last
    except WitnessRefusal as refusal:
        return refusal.http_status, "", last
    return 200, cosigned.cosignature, cosigned.tree_head


# keys.json


def test_published_keys_agree_with_their_ids_and_seeds(witness_key: Vector) -> None:
    """Every key's vkeys parse with the key id the formula gives, its seed yields its public
    key, and its skey signs as its vkey verifies."""
    public = witness_key["public_key_hex"]
    for field in ("vkey", "log_vkey"):
        if field in witness_key:
            verifier = NoteVerifier.from_verifier_key(witness_key[field])
            assert verifier.key_id.hex() == witness_key["key_id_0x01_hex"]
            assert verifier.verifier_key == witness_key[field]
    if "cosignature_v1_vkey" in witness_key:
        cosigner = CosignatureVerifier.from_verifier_key(witness_key["cosignature_v1_vkey"])
        assert cosigner.key_id.hex() == witness_key["key_id_0x04_hex"]
        assert cosigner.verifier_key == witness_key["cosignature_v1_vkey"]
    if "seed_hex" in witness_key:
        assert SigningKey.from_seed(bytes.fromhex(witness_key["seed_hex"])).public_raw.hex() \
            == public
    if "skey" in witness_key:
        signer = NoteSigner.from_private_key(witness_key["skey"])
        assert signer.verifier().verifier_key == witness_key["vkey"]


def test_cosigner_vkey_parsing(vkey_vector: Vector) -> None:
    if vkey_vector["want"] == "reject":
        with pytest.raises(ValueError):
            CosignatureVerifier.from_verifier_key(vkey_vector["vkey"])
        return
    verifier = CosignatureVerifier.from_verifier_key(vkey_vector["vkey"])
    assert CosignatureVerifier.from_verifier_key(verifier.verifier_key) == verifier


def test_a_note_key_used_as_cosigner_takes_its_0x04_id() -> None:
    """formats' TestCoSigV1NewVerifier: the 0x01 TEST key becomes a cosigner with id fdd2dbc7."""
    verifier = CosignatureVerifier.from_verifier_key(
        "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert verifier.key_id.hex() == "fdd2dbc7"
    assert verifier.verifier_key.startswith("TEST+fdd2dbc7+B")


# signed-notes.json


def test_signed_note(witness_note_vector: Vector) -> None:
    """Accept: every listed key's line verifies, lines of unknown names are ignored."""
    note = witness_note_vector["note"].encode()
    verifiers = [NoteVerifier.from_verifier_key(k) for k in witness_note_vector["verifier_keys"]]
    if witness_note_vector["want"] == "reject":
        with pytest.raises(NoteError):
            open_note(note, verifiers)
        return
    text, verified = verify_note(note, verifiers)
    assert text == note.decode().partition("\n\n")[0] + "\n"
    assert [v for v, _ in verified] == verifiers


# cosignatures.json


def test_cosigned_message(message_vector: Vector) -> None:
    message = cosigned_message(message_vector["checkpoint_body"].encode(),
                               message_vector["timestamp"])
    assert message == message_vector["want_message"].encode()


def test_cosignature_parsing(cosignature_parse_vector: Vector) -> None:
    vector = cosignature_parse_vector
    if "signature_line" in vector:
        _, cosignature = Cosignature.from_line(vector["signature_line"])
    elif vector["want"] == "error":
        with pytest.raises(ValueError):
            Cosignature.from_base64(vector["signature_b64"])
        return
    else:
        cosignature = Cosignature.from_base64(vector["signature_b64"])
    assert (cosignature.key_id.hex(), cosignature.timestamp, len(cosignature.signature)) \
        == (vector["want"]["key_id_hex"], vector["want"]["timestamp"],
            vector["want"]["signature_len"])


def test_cosignature_verification(cosignature_vector: Vector) -> None:
    """The line on the checkpoint body, checked by a one-witness policy: accepted at its
    timestamp, or rejected (a foreign id or name is ignored, leaving no cosignature)."""
    vector = cosignature_vector
    note = (vector["checkpoint_body"] + "\n" + vector["signature_line"]).encode()
    policy = WitnessPolicy([vector["cosigner_vkey"]], quorum=1)
    if vector["want"] == "reject":
        with pytest.raises(NoteError):
            policy.check(note)
        return
    assert policy.check(note) == [WitnessCosignature(vector["cosigner_vkey"],
                                                     vector["parsed"]["timestamp"])]


def test_cosignature_line_fields(cosignature_vector: Vector) -> None:
    parsed = cosignature_vector["parsed"]
    if parsed["signature_len"] != 64:
        with pytest.raises(ValueError):
            Cosignature.from_line(cosignature_vector["signature_line"])
        return
    _, cosignature = Cosignature.from_line(cosignature_vector["signature_line"])
    assert (cosignature.key_id.hex(), cosignature.timestamp) \
        == (parsed["key_id_hex"], parsed["timestamp"])


@pytest.mark.parametrize(("vector_id", "key_id"), [("sigsum-cosig-1234", "sigsum-test-17"),
                                                   ("generated-tdw-8", "tdw-witness")])
def test_signing_reproduces_the_cosignature(cosignature_vectors: Vector,
                                            witness_keys: dict[str, Vector], vector_id: str,
                                            key_id: str) -> None:
    """Ed25519 is deterministic: our line must be the published (or generated) one."""
    vector = next(v for v in cosignature_vectors["verify"] if v["id"] == vector_id)
    signer = _signer(witness_keys[key_id], vector["cosigner_name"])
    assert signer.verifier().verifier_key == vector["cosigner_vkey"]
    line = signer.cosign(vector["checkpoint_body"].encode(), vector["parsed"]["timestamp"])
    assert line == vector["signature_line"]


def test_cosigned_checkpoint_opens_with_log_and_witness_keys(cosignature_vectors: Vector,
                                                            witness_keys: dict[str, Vector]
                                                            ) -> None:
    vector = cosignature_vectors["cosigned_checkpoint"]
    note = vector["note"].encode()
    log = NoteVerifier.from_verifier_key(vector["log_vkey"])
    witness = CosignatureVerifier.from_verifier_key(vector["cosigner_vkey"])
    text, verified = verify_note(note, [log, witness])
    assert [v for v, _ in verified] == [log, witness]
    assert Checkpoint.parse(text).size == 8
    plain_witness = NoteVerifier.from_verifier_key(witness_keys["tdw-witness"]["vkey"])
    with pytest.raises(UnknownKeyError):
        open_note(note, [plain_witness])
    assert WitnessPolicy([vector["cosigner_vkey"]], 1).check(note)[0].timestamp == 1700000000


# add-checkpoint.json


def test_add_checkpoint_parsing(add_checkpoint_parse_vector: Vector) -> None:
    vector = add_checkpoint_parse_vector
    if vector["want"] == "error":
        with pytest.raises(MalformedRequest):
            AddCheckpoint.parse(vector["body"].encode())
        return
    request = AddCheckpoint.parse(vector["body"].encode())
    want = vector["want"]
    assert request.old_size == want["old_size"]
    assert [h.hex() for h in request.proof] == want["proof_hex"]
    assert AddCheckpoint.parse(request.to_bytes()) == request
    if "checkpoint" in want:
        assert request.checkpoint == want["checkpoint"].encode()
        return
    checkpoint = Checkpoint.parse(unverified_text(request.checkpoint))
    assert (request.origin, checkpoint.size, checkpoint.root_hash.hex()) \
        == (want["checkpoint_origin"], want["checkpoint_size"], want["root_hex"])
    assert signing_keys(request.checkpoint) == [f"{checkpoint.origin}+"
                                                f"{want['signature_key_id_hex']}"]


def _tdw_witness(vectors: Vector, keys: dict[str, Vector]) -> Witness:
    log = NoteVerifier.from_verifier_key(vectors["transparency_dev_witness"]["log_vkey"])
    return Witness(_signer(keys["tdw-witness"], "witness"), [WitnessedLog("monkeys", log)])


def test_transparency_dev_witness_scenario(witness_scenario: Vector,
                                           add_checkpoint_vectors: Vector,
                                           witness_keys: dict[str, Vector]) -> None:
    """From an empty witness: the setup requests are cosigned, then the request gets the
    status the spec's current text gives, and a conflict's body is the witness's size."""
    witness = _tdw_witness(add_checkpoint_vectors, witness_keys)
    last = NEVER_COSIGNED
    for setup in witness_scenario["setup_requests"]:
        status, _, last = _answer(witness, setup, last, now=1700000000)
        assert status == 200
    status, body, _ = _answer(witness, witness_scenario["request_body"], last, now=1700000000)
    assert status == witness_scenario["want_status"]
    if "want_body" in witness_scenario:
        assert body == witness_scenario["want_body"]
    if "want_body_example" in witness_scenario:
        assert body == witness_scenario["want_body_example"]


def test_torchwood_litewitness_sequence(add_checkpoint_vectors: Vector,
                                        witness_keys: dict[str, Vector]) -> None:
    """One witness and one log through torchwood's nine requests, in order; every
    cosignature the witness gives verifies under its key on the checkpoint."""
    vectors = add_checkpoint_vectors["torchwood_litewitness"]
    log = NoteVerifier.from_verifier_key(vectors["log_vkey"])
    key = witness_keys["torchwood-litewitness"]
    witness = Witness(_signer(key, vectors["witness_name"]), [WitnessedLog(log.name, log)])
    policy = WitnessPolicy([key["cosignature_v1_vkey"]], quorum=1)
    last = NEVER_COSIGNED
    for number, step in enumerate(vectors["sequence"], 1):
        status, body, last = _answer(witness, step["request_body"], last, now=1750000000 + number)
        assert status == step["want_status"], (number, step["desc"])
        assert step.get("want_body_contains", "") in body
        assert body == step.get("want_body", body)
        if status == 200:
            note = AddCheckpoint.parse(step["request_body"].encode()).checkpoint
            assert policy.check(note + body.encode())[0].timestamp == 1750000000 + number
    assert last.size == 5


def test_refusals_answer_the_spec_status_codes(add_checkpoint_vectors: Vector) -> None:
    """Each refusal the spec lists has its class; 429 (back-pressure) is the HTTP layer's."""
    statuses = {row["status"] for row in add_checkpoint_vectors["status_codes"]["rows"]}
    ours = {cls.http_status for cls in WitnessRefusal.__subclasses__()}
    assert ours == statuses - {200, 429}


def test_c2sp_example_parses(add_checkpoint_vectors: Vector) -> None:
    """The spec's example request and response (unverifiable: no keys) parse as it says."""
    example = add_checkpoint_vectors["c2sp_example"]
    want = example["want_parse"]
    request = AddCheckpoint.parse(example["request_body"].encode())
    checkpoint = Checkpoint.parse(unverified_text(request.checkpoint))
    assert (request.old_size, len(request.proof), checkpoint.size) \
        == (want["old_size"], want["proof_lines"], want["checkpoint_size"])
    assert len(signing_keys(request.checkpoint)) == want["checkpoint_signature_lines"]
    lines = example["response_body"].splitlines()
    assert len([Cosignature.from_line(line) for line in lines]) == want["response_lines"]
