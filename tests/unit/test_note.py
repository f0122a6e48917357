"""C2SP signed notes and tlog checkpoints in govshare.transparency.note."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govshare.signing import SigningKey
from govshare.transparency.note import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    open_note,
    sign_note,
)

TEXT = "govshare.example/audit\n42\n" + base64.b64encode(bytes(range(32))).decode() + "\n"
EM_DASH = "\u2014"


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner("govshare.example/audit", SigningKey.generate())


@pytest.fixture(scope="module")
def witness() -> NoteSigner:
    return NoteSigner("witness.example/w1", SigningKey.generate())


def _signature_line(note: bytes) -> bytes:
    return note[note.rindex(b"\n\n") + 2 :]


def test_round_trip_and_exact_format(signer: NoteSigner) -> None:
    note = sign_note(TEXT, [signer])
    assert note.startswith(TEXT.encode() + b"\n\xe2\x80\x94 govshare.example/audit ")
    assert note.endswith(b"\n")
    blob = base64.b64decode(_signature_line(note).split(b" ")[2])
    assert blob[:4] == signer.key_id and len(blob) == 4 + 64
    assert open_note(note, [signer.verifier()]) == TEXT


def test_key_id_follows_the_spec(signer: NoteSigner) -> None:
    public = signer._key.public_raw
    digest = hashlib.sha256(b"govshare.example/audit\n\x01" + public).digest()
    assert signer.key_id == digest[:4]
    name, hex_id, encoded = signer.verifier().verifier_key.split("+", 2)
    assert (name, hex_id) == ("govshare.example/audit", digest[:4].hex())
    assert base64.b64decode(encoded) == b"\x01" + public


def test_verifier_key_round_trip(signer: NoteSigner) -> None:
    text = signer.verifier().verifier_key
    parsed = NoteVerifier.from_verifier_key(text)
    assert (parsed.name, parsed.key_id, parsed.verifier_key) == (signer.name, signer.key_id, text)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda name, hex_id, key: f"{name}+{hex_id}",
        lambda name, hex_id, key: f"{name}+{'0' * 8}+{key}",
        lambda name, hex_id, key: f"{name}+{hex_id[:7]}+{key}",
        lambda name, hex_id, key: f"{name}+0x{hex_id[2:]}+{key}",
        lambda name, hex_id, key: f"other+{hex_id}+{key}",
        lambda name, hex_id, key: f"+{hex_id}+{key}",
        lambda name, hex_id, key: f"{name}+{hex_id}+{key[:-4]}",
        lambda name, hex_id, key: f"{name}+{hex_id}+B{key[1:]}",
        lambda name, hex_id, key: f"{name}+{hex_id}+{key}=",
    ],
    ids=[
        "no-key",
        "wrong-id",
        "short-id",
        "0x-id",
        "other-name",
        "no-name",
        "short-key",
        "wrong-type",
        "bad-base64",
    ],
)
def test_malformed_verifier_keys_are_rejected(
    signer: NoteSigner, mutate: Callable[[str, str, str], str]
) -> None:
    name, hex_id, key = signer.verifier().verifier_key.split("+", 2)
    with pytest.raises(ValueError):
        NoteVerifier.from_verifier_key(mutate(name, hex_id, key))


@pytest.mark.parametrize("name", ["", "a+b", "a b", "a\u00a0b", "a\tb"])
def test_invalid_key_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="key name"):
        NoteSigner(name, SigningKey.generate())


def test_cosigned_note_opens_with_either_key(signer: NoteSigner, witness: NoteSigner) -> None:
    note = sign_note(TEXT, [signer, witness])
    assert note.count(EM_DASH.encode()) == 2
    assert open_note(note, [signer.verifier()]) == TEXT
    assert open_note(note, [witness.verifier()]) == TEXT


def test_unknown_signatures_are_ignored_but_one_known_one_is_required(
    signer: NoteSigner, witness: NoteSigner
) -> None:
    note = sign_note(TEXT, [witness, signer])
    assert open_note(note, [signer.verifier()]) == TEXT
    with pytest.raises(NoteError, match="known key"):
        open_note(sign_note(TEXT, [witness]), [signer.verifier()])
    with pytest.raises(NoteError):
        open_note(note, [])


def test_same_name_other_key_is_an_unknown_signer(signer: NoteSigner) -> None:
    impostor = NoteSigner(signer.name, SigningKey.generate())
    with pytest.raises(NoteError, match="known key"):
        open_note(sign_note(TEXT, [impostor]), [signer.verifier()])


def test_invalid_signature_from_a_known_key_rejects_the_note(
    signer: NoteSigner, witness: NoteSigner
) -> None:
    forged = sign_note(TEXT.replace("42", "43"), [signer])
    note = sign_note(TEXT, [witness]) + _signature_line(forged)
    with pytest.raises(NoteError, match="verification failed"):
        open_note(note, [signer.verifier(), witness.verifier()])


def test_altered_text_fails(signer: NoteSigner) -> None:
    note = sign_note(TEXT, [signer])
    with pytest.raises(NoteError):
        open_note(note.replace(b"42", b"43"), [signer.verifier()])


def test_text_with_blank_lines_splits_at_the_last_one(signer: NoteSigner) -> None:
    text = "first\n\nsecond\n\n"
    assert open_note(sign_note(text, [signer]), [signer.verifier()]) == text


@pytest.mark.parametrize(
    "mutate",
    [
        lambda note: note[:-1],  # no final newline
        lambda note: note.replace(b"\n\n", b"\n"),  # no blank line
        lambda note: note.replace(EM_DASH.encode(), b"-"),
        lambda note: note.replace(EM_DASH.encode() + b" ", EM_DASH.encode()),
        lambda note: note[:-2] + b"!\n",  # bad base64
        lambda note: note[:-10] + b"\n",  # truncated base64
        lambda note: note[:-1] + b"=\n",  # excess padding
        lambda note: note + b"\n",  # empty signature line
        lambda note: note.replace(b"42", b"4\x072"),  # control character
        lambda note: note.replace(b"42", b"4\xff2"),  # invalid UTF-8
        lambda note: note.replace(b"42", b"4\r2"),
    ],
    ids=[
        "no-final-newline",
        "no-blank-line",
        "hyphen",
        "no-space",
        "bad-base64",
        "truncated",
        "excess-padding",
        "empty-line",
        "control-char",
        "bad-utf8",
        "carriage-return",
    ],
)
def test_malformed_notes_are_rejected(signer: NoteSigner, mutate: Callable[[bytes], bytes]) -> None:
    with pytest.raises(NoteError):
        open_note(mutate(sign_note(TEXT, [signer])), [signer.verifier()])


def test_short_signature_is_malformed(signer: NoteSigner) -> None:
    line = f"{EM_DASH} {signer.name} {base64.b64encode(signer.key_id).decode()}\n"
    with pytest.raises(NoteError, match="malformed"):
        open_note(TEXT.encode() + b"\n" + line.encode(), [signer.verifier()])


def test_signature_count_is_bounded(signer: NoteSigner, witness: NoteSigner) -> None:
    note = sign_note(TEXT, [signer])
    extra = _signature_line(sign_note(TEXT, [witness]))
    assert open_note(note + extra * (MAX_SIGNATURES - 1), [signer.verifier()]) == TEXT
    with pytest.raises(NoteError, match="malformed"):
        open_note(note + extra * MAX_SIGNATURES, [signer.verifier()])


@pytest.mark.parametrize("text", ["no newline", "", "tab\there\n", "bell\x07\n"])
def test_sign_note_rejects_bad_text(signer: NoteSigner, text: str) -> None:
    with pytest.raises(ValueError):
        sign_note(text, [signer])


def test_sign_note_needs_a_signer() -> None:
    with pytest.raises(ValueError, match="signer"):
        sign_note(TEXT, [])


def test_private_key_text_must_match_its_id() -> None:
    key = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    assert NoteSigner.from_private_key(key).name == "PeterNeumann"
    for bad in (key.replace("c74f20a3", "c74f20a4"), key[len("PRIVATE+") :], key + "A"):
        with pytest.raises(ValueError):
            NoteSigner.from_private_key(bad)


def test_repr_hides_the_private_key(signer: NoteSigner) -> None:
    assert repr(signer) == f"NoteSigner(name={signer.name!r}, key_id={signer.key_id.hex()!r})"


# Checkpoints
ROOT = bytes(range(32))


def test_checkpoint_text_format() -> None:
    checkpoint = Checkpoint("govshare.example/audit", 42, ROOT)
    assert checkpoint.to_text() == TEXT
    assert Checkpoint.parse(TEXT) == checkpoint
    with_extensions = Checkpoint("o", 0, ROOT, ("ext one", "ext two"))
    assert with_extensions.to_text().endswith("\next one\next two\n")
    assert Checkpoint.parse(with_extensions.to_text()) == with_extensions


names = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30)


@given(
    origin=names,
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(names, max_size=3).map(tuple),
)
def test_checkpoint_round_trip(origin: str, size: int, root: bytes, extensions: tuple) -> None:
    checkpoint = Checkpoint(origin, size, root, extensions)
    assert Checkpoint.parse(checkpoint.to_text()) == checkpoint


@pytest.mark.parametrize(
    "size", ["042", "+42", "-1", " 42", "42 ", "４２", "4_2", "", "0x2a", str(2**64)]
)
def test_checkpoint_size_must_be_plain_decimal(size: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(TEXT.replace("\n42\n", f"\n{size}\n"))


@pytest.mark.parametrize(
    "text",
    [
        TEXT[:-1],  # no final newline
        "govshare.example/audit\n42\n",  # no root
        "\n42\n" + TEXT.split("\n")[2] + "\n",  # empty origin
        TEXT + "\n",  # empty extension line
        TEXT.replace("AAECAwQF", "AAECAwQ"),  # not base64
        "o\n1\n" + base64.b64encode(bytes(31)).decode() + "\n",  # 31-byte root
        "o\n1\n" + base64.b64encode(bytes(32)).decode().rstrip("=") + "\n",  # no padding
        "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n",  # non-canonical base64
    ],
    ids=[
        "no-final-newline",
        "no-root",
        "empty-origin",
        "empty-extension",
        "bad-base64",
        "short-root",
        "unpadded",
        "non-canonical",
    ],
)
def test_malformed_checkpoints_are_rejected(text: str) -> None:
    with pytest.raises(NoteError, match="malformed checkpoint"):
        Checkpoint.parse(text)


def test_checkpoint_fields_are_validated() -> None:
    for bad in (
        lambda: Checkpoint("", 1, ROOT),
        lambda: Checkpoint("a\nb", 1, ROOT),
        lambda: Checkpoint("o", -1, ROOT),
        lambda: Checkpoint("o", 1, ROOT[:31]),
        lambda: Checkpoint("o", 1, ROOT, ("",)),
    ):
        with pytest.raises(ValueError):
            bad()


def test_signed_checkpoint_round_trip(signer: NoteSigner) -> None:
    checkpoint = Checkpoint(signer.name, 7, ROOT)
    note = sign_note(checkpoint.to_text(), [signer])
    assert Checkpoint.parse(open_note(note, [signer.verifier()])) == checkpoint
