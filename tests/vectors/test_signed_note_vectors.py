"""C2SP signed notes checked against the spec's example and Go's sumdb/note TestSign."""

from __future__ import annotations

import pytest

from govshare.transparency.note import NoteError, NoteSigner, NoteVerifier, open_note, sign_note


def _note(vector: dict[str, str], name: str) -> bytes:
    """The signed note a vector describes: text, blank line, its one signature line."""
    return f"{vector['text']}\n\u2014 {name} {vector['signature_b64']}\n".encode()


def _verifier(vector: dict[str, str]) -> NoteVerifier:
    if "verifier_key" in vector:
        return NoteVerifier.from_verifier_key(vector["verifier_key"])
    return NoteSigner.from_private_key(vector["signer_key"]).verifier()


def test_signing_reproduces_the_published_note(note_signing_vector: dict[str, str]) -> None:
    """Ed25519 is deterministic, so our note must match the published one byte for byte."""
    signer = NoteSigner.from_private_key(note_signing_vector["signer_key"])
    expected = _note(note_signing_vector, signer.name)
    assert sign_note(note_signing_vector["text"], [signer]) == expected


def test_published_note_verifies(note_vector: dict[str, str]) -> None:
    verifier = _verifier(note_vector)
    assert open_note(_note(note_vector, verifier.name), [verifier]) == note_vector["text"]


def test_verifier_key_text_round_trips(note_vector: dict[str, str]) -> None:
    verifier = _verifier(note_vector)
    text = verifier.verifier_key
    assert NoteVerifier.from_verifier_key(text).verifier_key == text
    if "verifier_key" in note_vector:
        assert verifier.verifier_key == note_vector["verifier_key"]


def test_published_note_with_altered_text_is_rejected(note_vector: dict[str, str]) -> None:
    verifier = _verifier(note_vector)
    altered = _note(note_vector, verifier.name).replace(b".", b"!", 1)
    with pytest.raises(NoteError):
        open_note(altered, [verifier])
