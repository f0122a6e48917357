"""check_proof parses C2SP tlog-proof strictly: every malformed file is a ProofFileError with a
reason, never another exception, and only ASCII decimal indexes without leading zeros pass."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import export
from govshare.signing import SigningKey
from govshare.transparency import merkle, note

ORIGIN = "test.local/audit"
SIGNER = note.NoteSigner(ORIGIN, SigningKey.from_seed(bytes(range(32))))
RECORDS = [b'{"n":0}', b'{"n":1}', b'{"n":2}']
LEAVES = [merkle.leaf_hash(r) for r in RECORDS]
ROOT = merkle.root_from_leaf_hashes(LEAVES)
SIGNED = note.sign_note(note.Checkpoint(ORIGIN, 3, ROOT).to_text(), [SIGNER])


def proof_lines(index: int = 1) -> list[str]:
    path = merkle.inclusion_proof(index, 3, lambda coords: [
        merkle.root_from_leaf_hashes(LEAVES[i << lv:(i + 1) << lv]) for lv, i in coords])
    return [export.HEADER, f"extra {base64.b64encode(RECORDS[index]).decode()}",
            f"index {index}", *(base64.b64encode(h).decode() for h in path)]


def proof(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n\n").encode() + SIGNED


def failure(data: bytes) -> str:
    with pytest.raises(export.ProofFileError) as caught:
        export.check_proof(data, SIGNER.verifier())
    return str(caught.value)


def test_a_valid_proof_checks() -> None:
    checked = export.check_proof(proof(proof_lines()), SIGNER.verifier())
    assert (checked.leaf_index, checked.record, checked.checkpoint.size) == (1, RECORDS[1], 3)


@pytest.mark.parametrize("index", ["01", "\u0661", "\uff11", "1_0", "+1", "-1", " 1", "1 ", "",
                                   "1\u00a0", "0x1", "18446744073709551616", "9" * 5000])
def test_an_index_that_is_no_plain_ascii_decimal_fails(index: str) -> None:
    lines = proof_lines()
    lines[2] = f"index {index}"
    assert failure(proof(lines)) == (f"line 3 is not the leaf index: {index[:24]!r} is not a"
                                     " decimal number from 0 to 18446744073709551615")


@pytest.mark.parametrize(("change", "reason"), [
    (lambda ls: [*ls[:3], "", *ls[3:]], "the checkpoint does not verify:"),
    (lambda ls: [*ls[:3], "A" * 43 + "=", *ls[3:]], "the inclusion proof fails:"),
    (lambda ls: [*ls[:3], "not base64!", *ls[3:]], "line 4 is not a hash of the audit path"),
    (lambda ls: [*ls[:3], "AAAA"], "line 4 is not a hash of the audit path: 3 bytes, not 32"),
    (lambda ls: [ls[0], "extra *", *ls[2:]], "line 2 is not the record: invalid base64"),
    (lambda ls: [ls[0], *ls[2:]], "the proof must carry the record"),
    (lambda ls: ["c2sp.org/tlog-proof@v2", *ls[1:]], "not a c2sp.org/tlog-proof@v1 proof"),
    (lambda ls: ls[:3] + ["A" * 43 + "="] * 65, "the audit path has 65 hashes"),
])
def test_a_malformed_proof_fails_with_its_reason(change, reason: str) -> None:
    assert failure(proof(change(proof_lines()))).startswith(reason)


def test_a_proof_that_is_no_utf8_or_empty_fails() -> None:
    assert failure(b"\xff" + proof(proof_lines())) == "the file is not UTF-8 text"
    assert failure(b"").startswith("not a c2sp.org/tlog-proof@v1 proof")


def test_a_proof_of_another_log_names_its_key() -> None:
    stranger = note.NoteSigner(ORIGIN, SigningKey.from_seed(bytes(32)))
    assert failure(proof(proof_lines())[: -len(SIGNED)] + note.sign_note(
        note.Checkpoint(ORIGIN, 3, ROOT).to_text(), [stranger])) == (
        f"the checkpoint is not signed by the key given ({ORIGIN}+{SIGNER.key_id.hex()}): it"
        f" is signed by {ORIGIN}+{stranger.key_id.hex()}")


def checked_or_failed(data: bytes) -> None:
    try:
        export.check_proof(data, SIGNER.verifier())
    except export.ProofFileError as exc:
        assert str(exc)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_fail_with_a_reason(data: bytes) -> None:
    checked_or_failed(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_valid_proof_with_random_lines_replaced_fails_with_a_reason(data) -> None:
    lines = (proof(proof_lines()).decode()).split("\n")
    at = data.draw(st.integers(0, len(lines) - 1))
    lines[at] = data.draw(st.text(max_size=80))
    checked_or_failed("\n".join(lines).encode("utf-8", "surrogatepass"))
