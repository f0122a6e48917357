"""A witness's add-checkpoint decisions and the witness quorum policy, with real Ed25519 keys
and real Merkle trees and proofs (govshare.transparency.witness and .cosignature)."""

from __future__ import annotations

import pytest

from govshare import errors
from govshare.signing import SigningKey
from govshare.transparency.cosignature import (
    MAX_TIMESTAMP,
    CosignatureSigner,
    CosignatureVerifier,
    QuorumError,
    WitnessCosignature,
    WitnessPolicy,
)
from govshare.transparency.merkle import (
    Coord,
    consistency_proof,
    leaf_hash,
    root_from_leaf_hashes,
)
from govshare.transparency.note import (
    Checkpoint,
    NoteError,
    NoteSigner,
    UnknownKeyError,
    open_note,
    sign_note,
)
from govshare.transparency.witness import (
    MAX_PROOF_LINES,
    NEVER_COSIGNED,
    AddCheckpoint,
    Cosigned,
    InconsistentCheckpoint,
    MalformedRequest,
    SizeConflict,
    TreeHead,
    UnknownLog,
    UnsignedCheckpoint,
    Witness,
    WitnessedLog,
)

ORIGIN = "gateway.gd.example/audit"
NOW = 1_760_000_000


class Log:
    """A log in memory: its leaves, and checkpoints signed by its note key."""

    def __init__(self, leaves: int, signer: NoteSigner | None = None) -> None:
        self.signer = signer or NoteSigner(ORIGIN, SigningKey.generate())
        self.leaves = [leaf_hash(b"event %d" % i) for i in range(leaves)]

    def _fetch(self, coords: list[Coord]) -> list[bytes]:
        return [root_from_leaf_hashes(self.leaves[i << level:(i + 1) << level])
                for level, i in coords]

    def checkpoint(self, size: int) -> bytes:
        text = Checkpoint(ORIGIN, size, root_from_leaf_hashes(self.leaves[:size])).to_text()
        return sign_note(text, [self.signer])

    def request(self, old: int, size: int) -> AddCheckpoint:
        proof = consistency_proof(old, size, self._fetch) if 0 < old < size else []
        return AddCheckpoint(old, tuple(proof), self.checkpoint(size))

    def head(self, size: int) -> TreeHead:
        return TreeHead(size, root_from_leaf_hashes(self.leaves[:size]))


def _cosigner(name: str = "witness.bj.example") -> CosignatureSigner:
    return CosignatureSigner(name, SigningKey.generate())


def _witness(log: Log, signer: CosignatureSigner | None = None) -> Witness:
    return Witness(signer or _cosigner(), [WitnessedLog(ORIGIN, log.signer.verifier())])


# The decision


def test_a_growing_log_is_cosigned_at_each_step_from_the_last_size() -> None:
    log = Log(20)
    witness = _witness(log)
    policy = WitnessPolicy([witness.signer.verifier().verifier_key], quorum=1)
    last = NEVER_COSIGNED
    for size in (0, 1, 7, 8, 8, 20):
        cosigned = witness.add_checkpoint(log.request(last.size, size), last, NOW + size)
        assert cosigned.tree_head == log.head(size)
        note = log.checkpoint(size) + cosigned.cosignature.encode()
        assert policy.check(note) == [WitnessCosignature(policy.witnesses[0], NOW + size)]
        last = cosigned.tree_head


def test_a_first_checkpoint_needs_no_proof() -> None:
    log = Log(5)
    cosigned = _witness(log).add_checkpoint(log.request(0, 5), NEVER_COSIGNED, NOW)
    assert isinstance(cosigned, Cosigned)
    assert cosigned.checkpoint.size == 5


def test_a_stale_old_size_is_a_conflict_that_names_the_witness_size() -> None:
    """The log retries from the size the conflict gives, and is then cosigned."""
    log = Log(9)
    witness = _witness(log)
    with pytest.raises(SizeConflict) as conflict:
        witness.add_checkpoint(log.request(3, 9), log.head(5), NOW)
    assert (conflict.value.size, conflict.value.body, conflict.value.http_status) \
        == (5, b"5\n", 409)
    assert conflict.value.code == "ABORTED"
    assert conflict.value.metadata == {"witness_size": "5"}
    retried = log.request(conflict.value.size, 9)
    assert witness.add_checkpoint(retried, log.head(5), NOW).tree_head == log.head(9)


def test_a_log_restored_from_an_old_backup_is_refused() -> None:
    """A gateway back at size 4 after its witness cosigned 6: old 6 to size 4 is malformed,
    old 4 is a conflict; the witness never cosigns the smaller tree."""
    log = Log(6)
    witness = _witness(log)
    with pytest.raises(MalformedRequest) as malformed:
        witness.add_checkpoint(AddCheckpoint(6, (), log.checkpoint(4)), log.head(6), NOW)
    assert malformed.value.http_status == 400
    with pytest.raises(SizeConflict):
        witness.add_checkpoint(log.request(0, 4), log.head(6), NOW)


def test_a_forked_log_is_refused_at_the_same_size_and_beyond() -> None:
    """The log rewrote leaf 2: its size-6 root differs from the one cosigned, and no proof
    from the cosigned size-6 tree leads to its size-10 tree."""
    honest, forked = Log(10), Log(10)
    forked.signer = honest.signer
    forked.leaves[2] = leaf_hash(b"rewritten")
    witness = _witness(honest)
    cosigned = honest.head(6)
    with pytest.raises(InconsistentCheckpoint) as same_size:
        witness.add_checkpoint(AddCheckpoint(6, (), forked.checkpoint(6)), cosigned, NOW)
    assert (same_size.value.http_status, same_size.value.code) == (422, "FAILED_PRECONDITION")
    with pytest.raises(InconsistentCheckpoint):
        witness.add_checkpoint(forked.request(6, 10), cosigned, NOW)


@pytest.mark.parametrize(("old", "proof"), [(0, (b"\x00" * 32,)), (4, ()), (4, (b"\x01",))],
                         ids=["proof-from-zero", "missing-proof", "short-hash"])
def test_a_proof_that_does_not_prove_is_refused(old: int, proof: tuple[bytes, ...]) -> None:
    log = Log(8)
    with pytest.raises(InconsistentCheckpoint):
        _witness(log).add_checkpoint(AddCheckpoint(old, proof, log.checkpoint(8)),
                                     log.head(old), NOW)


def test_the_same_checkpoint_again_is_cosigned_but_not_with_a_proof() -> None:
    log = Log(4)
    witness = _witness(log)
    assert witness.add_checkpoint(log.request(4, 4), log.head(4), NOW).tree_head == log.head(4)
    with pytest.raises(InconsistentCheckpoint):
        witness.add_checkpoint(AddCheckpoint(4, (b"\x00" * 32,), log.checkpoint(4)),
                               log.head(4), NOW)


def test_a_size_zero_checkpoint_must_carry_the_empty_root() -> None:
    log = Log(0)
    text = Checkpoint(ORIGIN, 0, b"\x07" * 32).to_text()
    with pytest.raises(InconsistentCheckpoint):
        _witness(log).add_checkpoint(AddCheckpoint(0, (), sign_note(text, [log.signer])),
                                     NEVER_COSIGNED, NOW)


def test_an_unknown_origin_is_not_found() -> None:
    log, other = Log(3), Log(3)
    witness = Witness(_cosigner(), [WitnessedLog("another.example/log", other.signer.verifier())])
    with pytest.raises(UnknownLog) as unknown:
        witness.add_checkpoint(log.request(0, 3), NEVER_COSIGNED, NOW)
    assert (unknown.value.http_status, unknown.value.code) == (404, "NOT_FOUND")


def test_a_checkpoint_not_signed_by_the_log_key_is_forbidden() -> None:
    """Signed by another key of the same name, or carrying a bad line of the log's key."""
    log = Log(3)
    impostor = Log(3, NoteSigner(ORIGIN, SigningKey.generate()))
    witness = _witness(log)
    with pytest.raises(UnsignedCheckpoint) as refused:
        witness.add_checkpoint(impostor.request(0, 3), NEVER_COSIGNED, NOW)
    assert (refused.value.http_status, refused.value.code) == (403, "PERMISSION_DENIED")
    tampered = log.checkpoint(3).replace(b"\n3\n", b"\n2\n")
    with pytest.raises(UnsignedCheckpoint):
        witness.add_checkpoint(AddCheckpoint(0, (), tampered), NEVER_COSIGNED, NOW)


def test_refusals_are_the_core_typed_errors() -> None:
    """gateway/status.py maps them by their gRPC code like any other typed error."""
    for refusal in (MalformedRequest, UnknownLog, UnsignedCheckpoint, SizeConflict,
                    InconsistentCheckpoint):
        assert issubclass(refusal, errors.GatewayError)
    assert issubclass(SizeConflict, errors.Aborted)
    assert issubclass(MalformedRequest, errors.InvalidArgument)


# The request body


def test_request_body_round_trips() -> None:
    request = Log(13).request(5, 13)
    body = request.to_bytes()
    assert body.startswith(b"old 5\n")
    assert AddCheckpoint.parse(body) == request
    assert request.origin == ORIGIN


@pytest.mark.parametrize("body", [
    b"old 05\n\nx\n\n\xe2\x80\x94 k AAAA\n",
    b"old -1\n\nx\n",
    b"old 1\nnot base64!\n\nx\n",
    b"old 1\n\xff\n\nx\n",
    b"old 1\nAAAA\n",
    b"old 1\n" + b"AAAA\n" * (MAX_PROOF_LINES + 1) + b"\nx\n",
], ids=["leading-zero", "negative", "bad-base64", "not-ascii", "no-empty-line", "long-proof"])
def test_malformed_bodies_are_bad_requests(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        AddCheckpoint.parse(body)


def test_a_body_whose_checkpoint_is_no_note_has_no_origin() -> None:
    request = AddCheckpoint.parse(b"old 0\n\nnot a note\n")
    with pytest.raises(MalformedRequest):
        _ = request.origin


# Cosignatures


def test_a_cosignature_is_not_a_note_signature_of_the_same_key() -> None:
    """The 0x04 key id and the cosignature/v1 header keep the two uses apart both ways."""
    key = SigningKey.generate()
    cosigner, note_signer = CosignatureSigner("w.example", key), NoteSigner("w.example", key)
    assert cosigner.key_id != note_signer.key_id
    body = Log(2).checkpoint(2).partition(b"\n\n")[0] + b"\n"
    cosigned = body + b"\n" + cosigner.cosign(body, NOW).encode()
    with pytest.raises(UnknownKeyError):
        open_note(cosigned, [note_signer.verifier()])
    with pytest.raises(QuorumError):
        WitnessPolicy([cosigner.verifier().verifier_key], 1).check(sign_note(body.decode(),
                                                                             [note_signer]))


@pytest.mark.parametrize("timestamp", [-1, MAX_TIMESTAMP + 1])
def test_a_witness_never_cosigns_outside_the_timestamp_range(timestamp: int) -> None:
    with pytest.raises(ValueError):
        _cosigner().cosign(b"o\n1\n" + b"A" * 43 + b"=\n", timestamp)


def test_verifier_key_text_round_trips() -> None:
    verifier = _cosigner().verifier()
    assert CosignatureVerifier.from_verifier_key(verifier.verifier_key) == verifier
    assert verifier.verifier_key.split("+")[2].startswith("B")  # base64 of 0x04 || key


# The quorum policy


def _cosigned_note(log: Log, size: int, lines: list[str]) -> bytes:
    return log.checkpoint(size) + "".join(lines).encode()


def _body(log: Log, size: int) -> bytes:
    return log.checkpoint(size).partition(b"\n\n")[0] + b"\n"


def test_two_of_three_witnesses_meet_the_quorum() -> None:
    log = Log(4)
    bj, gd, zj = _cosigner("bj"), _cosigner("gd"), _cosigner("zj")
    policy = WitnessPolicy([w.verifier().verifier_key for w in (bj, gd, zj)], quorum=2)
    note = _cosigned_note(log, 4, [zj.cosign(_body(log, 4), NOW + 2),
                                   bj.cosign(_body(log, 4), NOW + 1)])
    assert policy.check(note) == [WitnessCosignature(policy.witnesses[0], NOW + 1),
                                  WitnessCosignature(policy.witnesses[2], NOW + 2)]


def test_one_of_three_is_short_of_the_quorum_whatever_else_signed() -> None:
    """A stranger's cosignature is ignored, and a witness's two lines count once."""
    log = Log(4)
    bj, gd, stranger = _cosigner("bj"), _cosigner("gd"), _cosigner("stranger")
    policy = WitnessPolicy([bj.verifier().verifier_key, gd.verifier().verifier_key], quorum=2)
    body = _body(log, 4)
    note = _cosigned_note(log, 4, [bj.cosign(body, NOW), bj.cosign(body, NOW + 9),
                                   stranger.cosign(body, NOW)])
    with pytest.raises(QuorumError):
        policy.check(note)
    single = WitnessPolicy([bj.verifier().verifier_key], quorum=1)
    assert single.check(note) == [WitnessCosignature(single.witnesses[0], NOW + 9)]


def test_a_bad_cosignature_of_a_policy_witness_rejects_the_checkpoint() -> None:
    """A line of bj's over another checkpoint: bj's key, failing; not merely uncounted."""
    log = Log(5)
    bj, gd = _cosigner("bj"), _cosigner("gd")
    policy = WitnessPolicy([bj.verifier().verifier_key, gd.verifier().verifier_key], quorum=1)
    note = _cosigned_note(log, 5, [gd.cosign(_body(log, 5), NOW),
                                   bj.cosign(_body(log, 4), NOW)])
    with pytest.raises(NoteError) as rejected:
        policy.check(note)
    assert not isinstance(rejected.value, QuorumError)


@pytest.mark.parametrize("quorum", [0, 3])
def test_a_quorum_outside_one_to_the_witness_count_is_refused(quorum: int) -> None:
    keys = [_cosigner(n).verifier().verifier_key for n in ("a", "b")]
    with pytest.raises(ValueError):
        WitnessPolicy(keys, quorum)


def test_a_witness_listed_twice_is_refused() -> None:
    key = _cosigner().verifier().verifier_key
    with pytest.raises(ValueError):
        WitnessPolicy([key, key], 1)
