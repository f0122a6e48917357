"""C2SP signed notes (c2sp.org/signed-note) and tlog checkpoints (c2sp.org/tlog-checkpoint).

Our checkpoints use the same text and signature format as Go's sumdb and the transparency-dev
tooling, so third-party witnesses and monitors can check our log without our code. Keys and
signatures go through ``govshare.signing``; this module only formats and parses.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from govshare.signing import SignatureError, SigningKey, VerifyKey, sha256

MAX_SIGNATURES = 100
"""Signature lines accepted in one note (the spec asks for at least 16), bounding the work."""

_ED25519 = b"\x01"
_SIG_PREFIX = "\u2014 "
_HEX_ID = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")  # [0-9] is ASCII only; 2**64 - 1 has 20 digits
_MAX_SIZE = 2**64 - 1


class NoteError(Exception):
    """A note or checkpoint is malformed or carries no valid signature from a known key."""


class UnknownKeyError(NoteError):
    """No signature of the note is from a trusted key (one may be of a key not trusted)."""


def is_key_name(name: str) -> bool:
    """Key names are non-empty, without Unicode spaces or '+', as the spec requires."""
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def _check_name(name: str) -> None:
    if not is_key_name(name):
        raise ValueError(f"invalid key name {name!r}")


def key_id(name: str, typed_key: bytes) -> bytes:
    """First 4 bytes of SHA-256(name || "\\n" || key type || public key): the type byte (0x01
    for note signatures, 0x04 for cosignatures) gives one key a different id per use."""
    return sha256(name.encode("utf-8") + b"\n" + typed_key)[:4]


def parse_decimal(text: str, maximum: int = _MAX_SIZE) -> int:
    """A number as the C2SP formats write it: ASCII digits, no leading zero (but "0"), no sign,
    space or underscore, at most `maximum`; ValueError otherwise. (int() would take " 5", "+5",
    "1_0", "05" and non-ASCII digits, Arabic-Indic or fullwidth.)"""
    if not _DECIMAL.fullmatch(text) or int(text) > maximum:
        raise ValueError(f"{text[:24]!r} is not a decimal number from 0 to {maximum}")
    return int(text)


def decode_base64(text: str) -> bytes:
    """Canonical standard base64 only (what our encoder emits), so encodings are not malleable."""
    try:
        data = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError("invalid base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    return data


def split_key(text: str, parts: int) -> tuple[str, bytes, bytes]:
    """Split ``[...+]name+hexid+base64(type||key)`` into (name, key id, type||key); whether the
    type is one the caller supports is the caller's check. ValueError if malformed."""
    fields = text.split("+", parts - 1)  # the base64 key may itself contain '+'
    if len(fields) != parts:
        raise ValueError("malformed key")
    name, hex_id, encoded = fields[-3:]
    _check_name(name)
    if not _HEX_ID.fullmatch(hex_id):
        raise ValueError("malformed key id")
    return name, bytes.fromhex(hex_id), decode_base64(encoded)


def _parse_key(text: str, parts: int) -> tuple[str, bytes, bytes]:
    """Split ``[...+]name+hexid+base64(0x01||key)`` into (name, key id, Ed25519 key bytes)."""
    name, text_key_id, key = split_key(text, parts)
    if key[:1] != _ED25519 or len(key) != 33:
        raise ValueError("malformed key or unsupported key type")
    return name, text_key_id, key[1:]


class SignatureVerifier(Protocol):
    """What note verification needs of a trusted key: the name and key id its signature lines
    carry, and a check of a line's signature bytes over the note text. Note keys
    (`NoteVerifier`) and witnesses' cosignature keys both are one."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, text: bytes, signature: bytes) -> bool: ...


V = TypeVar("V", bound=SignatureVerifier)


class NoteVerifier:
    """A trusted note key: name, 4-byte key id and Ed25519 public key."""

    __slots__ = ("_key", "key_id", "name")

    def __init__(self, name: str, key: VerifyKey) -> None:
        _check_name(name)
        self.name = name
        self.key_id = key_id(name, _ED25519 + key.public_raw)
        self._key = key

    @classmethod
    def from_verifier_key(cls, text: str) -> NoteVerifier:
        """Parse ``<name>+<hex key id>+<base64(0x01||public key)>``; ValueError if malformed."""
        name, key_id, public_raw = _parse_key(text, 3)
        verifier = cls(name, VerifyKey.from_raw(public_raw))
        if verifier.key_id != key_id:
            raise ValueError("key id does not match the key")
        return verifier

    @property
    def key(self) -> VerifyKey:
        """The Ed25519 public key."""
        return self._key

    @property
    def verifier_key(self) -> str:
        """The key in the text form other tools (Go's note package, witnesses) accept."""
        encoded = base64.b64encode(_ED25519 + self._key.public_raw).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, text)
        except SignatureError:
            return False
        return True

    def __repr__(self) -> str:
        return f"NoteVerifier({self.verifier_key!r})"


class NoteSigner:
    """Signs notes as ``name`` with an Ed25519 key."""

    __slots__ = ("_key", "_verifier")

    def __init__(self, name: str, signing_key: SigningKey) -> None:
        self._key = signing_key
        self._verifier = NoteVerifier(name, signing_key.verifier())

    @classmethod
    def from_private_key(cls, text: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01||seed)>`` (Go's test-vector format)."""
        if not text.startswith("PRIVATE+KEY+"):
            raise ValueError("malformed private key")
        name, key_id, seed = _parse_key(text, 5)
        signer = cls(name, SigningKey.from_seed(seed))
        if signer.key_id != key_id:
            raise ValueError("key id does not match the key")
        return signer

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def key_id(self) -> bytes:
        return self._verifier.key_id

    def verifier(self) -> NoteVerifier:
        return self._verifier

    def signature_line(self, text: bytes) -> str:
        signature = base64.b64encode(self.key_id + self._key.sign(text)).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {signature}\n"

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id.hex()!r})"


def _check_text(text: str) -> None:
    """Valid UTF-8 without ASCII control characters other than newline, as notes require."""
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise ValueError("note contains a control character")
    text.encode("utf-8")  # lone surrogates raise UnicodeEncodeError, a ValueError


def sign_note(text: str, signers: Iterable[NoteSigner]) -> bytes:
    """The signed note: ``text``, a blank line, then one signature line per signer."""
    if not text.endswith("\n"):
        raise ValueError("note text must end with a newline")
    _check_text(text)
    body = text.encode("utf-8")
    lines = [signer.signature_line(body) for signer in signers]
    if not lines:
        raise ValueError("a note needs at least one signer")
    return body + b"\n" + "".join(lines).encode("utf-8")


def parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    """``— name base64(key id || signature)`` -> (name, key id, signature)."""
    if not line.startswith(_SIG_PREFIX):
        raise ValueError("not a signature line")
    name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
    _check_name(name)
    blob = decode_base64(encoded)
    if len(blob) < 5:
        raise ValueError("signature too short")
    return name, blob[:4], blob[4:]


def _split_note(note: bytes) -> tuple[str, list[str]]:
    """Text and signature lines of a note; ValueError if it is not a well-formed note."""
    message = note.decode("utf-8")
    _check_text(message)
    text, separator, signatures = message.rpartition("\n\n")
    if not separator or not signatures.endswith("\n"):
        raise ValueError("no signature block")
    lines = signatures[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise ValueError("too many signatures")
    return text + "\n", lines


def verify_note(note: bytes, verifiers: Iterable[V]) -> tuple[str, list[tuple[V, bytes]]]:
    """The text of ``note`` and each known key's signature line in it, as (verifier, signature
    bytes), once all of those verify; NoteError otherwise. Finding none is no error here.

    Checklist, failing at the first problem: the note is well formed; signatures from unknown
    keys are ignored; every signature from a known key verifies (one bad one rejects the whole
    note, as the spec recommends).
    """
    known = {(v.name, v.key_id): v for v in verifiers}
    try:
        text, lines = _split_note(note)
        signatures = [parse_signature_line(line) for line in lines]
    except ValueError:
        raise NoteError("malformed note") from None
    body = text.encode("utf-8")
    verified = []
    for name, line_key_id, signature in signatures:
        verifier = known.get((name, line_key_id))
        if verifier is None:
            continue
        if not verifier.verify(body, signature):
            raise NoteError("note signature verification failed")
        verified.append((verifier, signature))
    return text, verified


def open_note(note: bytes, verifiers: Iterable[SignatureVerifier]) -> str:
    """The text of ``note`` once a known key's signature verifies, and every known key's
    does (`verify_note`); UnknownKeyError if no line is from a known key."""
    text, verified = verify_note(note, verifiers)
    if not verified:
        raise UnknownKeyError("note has no signature from a known key")
    return text


def unverified_text(note: bytes) -> str:
    """The text of ``note`` with no signature checked: only to find out which keys to check it
    with (a checkpoint's origin names its log); NoteError if the note is malformed."""
    try:
        return _split_note(note)[0]
    except ValueError:
        raise NoteError("malformed note") from None


def signing_keys(note: bytes) -> list[str]:
    """The keys a note names in its signature lines, as "name+hex key id" (whether their
    signatures verify is open_note's question); NoteError if the note is malformed."""
    try:
        _, lines = _split_note(note)
        return [f"{name}+{key_id.hex()}"
                for name, key_id, _ in map(parse_signature_line, lines)]
    except ValueError:
        raise NoteError("malformed note") from None


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint: the note text committing to a log's tree at one size."""

    origin: str
    """Unique name of the log; by convention also the signing key name."""
    size: int
    """Number of leaves."""
    root_hash: bytes
    """RFC 6962 root of those leaves (32 bytes)."""
    extensions: tuple[str, ...] = ()
    """Optional opaque lines after the root; discouraged, as monitors can not audit them."""

    def __post_init__(self) -> None:
        for line in (self.origin, *self.extensions):
            if not line or "\n" in line:
                raise ValueError(f"checkpoint line must be one non-empty line: {line!r}")
        if not 0 <= self.size <= _MAX_SIZE:
            raise ValueError(f"checkpoint size out of range: {self.size}")
        if len(self.root_hash) != 32:
            raise ValueError("checkpoint root hash must be 32 bytes")

    def to_text(self) -> str:
        root = base64.b64encode(self.root_hash).decode("ascii")
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Strict parse of checkpoint text (as returned by open_note); NoteError if malformed."""
        lines = text.split("\n")
        if len(lines) < 4 or lines.pop() != "":
            raise NoteError("malformed checkpoint")
        origin, size, root, *extensions = lines
        try:
            return cls(origin, parse_decimal(size), decode_base64(root), tuple(extensions))
        except ValueError:
            raise NoteError("malformed checkpoint") from None
