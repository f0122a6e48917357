"""Witness cosignatures: C2SP tlog-cosignature, `cosignature/v1` (Ed25519, key type 0x04), and
the quorum policy a client checks them against.

A witness that has verified a checkpoint signs ``cosignature/v1\\ntime <T>\\n`` followed by the
checkpoint body, and carries the result as a signed-note signature line (c2sp.org/signed-note)
whose bytes are key id || 8-byte big-endian T || Ed25519 signature. The key id is computed with
type byte 0x04, so a witness key's cosignatures never pass for its plain note signatures (0x01)
nor the other way round. `CosignatureVerifier` is a `note.SignatureVerifier`: a checkpoint
carrying its log's signature and witnesses' cosignatures is opened by `note.verify_note` with
both kinds of key at once, lines of unknown keys ignored as signed-note says.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

from govshare.signing import SignatureError, SigningKey, VerifyKey
from govshare.transparency.note import (
    NoteError,
    decode_base64,
    is_key_name,
    key_id,
    parse_signature_line,
    split_key,
    verify_note,
)

COSIGNATURE_V1 = b"\x04"
"""Key type of an Ed25519 cosignature/v1 key: the byte hashed into its key id."""

MAX_TIMESTAMP = 2**63 - 1
"""Largest timestamp the spec allows (seconds since the epoch, as a signed 64-bit count)."""

_NOTE_ED25519 = b"\x01"
_TIMESTAMP_BYTES = 8
_SIGNATURE_BYTES = 64


def cosigned_message(body: bytes, timestamp: int) -> bytes:
    """The bytes a witness signs: the cosignature/v1 header, the time line, the checkpoint."""
    return b"cosignature/v1\ntime %d\n%b" % (timestamp, body)


def _check_timestamp(timestamp: int) -> None:
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"cosignature timestamp {timestamp} is outside 0..2**63-1")


@dataclass(frozen=True)
class Cosignature:
    """The bytes of a cosignature line, split: who (key id), when (timestamp), the signature."""

    key_id: bytes
    timestamp: int
    """Seconds since the epoch at which the witness cosigned; not yet checked against the
    spec's limit, which verification enforces (a parsed line may carry any 64-bit value)."""
    signature: bytes

    @classmethod
    def from_bytes(cls, blob: bytes) -> Cosignature:
        """Split 4 + 8 + 64 bytes; ValueError for any other length (a plain note signature,
        68 bytes, is not a cosignature)."""
        if len(blob) != 4 + _TIMESTAMP_BYTES + _SIGNATURE_BYTES:
            raise ValueError(f"a cosignature/v1 signature is 76 bytes, not {len(blob)}")
        return cls(blob[:4], int.from_bytes(blob[4:12], "big"), blob[12:])

    @classmethod
    def from_line(cls, line: str) -> tuple[str, Cosignature]:
        """Name and cosignature of a signature line ``— <name> <base64>``, with or without its
        newline; ValueError if malformed."""
        name, line_key_id, signature = parse_signature_line(line.removesuffix("\n"))
        return name, cls.from_bytes(line_key_id + signature)

    @classmethod
    def from_base64(cls, text: str) -> Cosignature:
        """The cosignature in a signature line's base64 field; ValueError if malformed."""
        return cls.from_bytes(decode_base64(text))


class CosignatureVerifier:
    """A witness's cosignature/v1 key: name, 4-byte key id (type 0x04) and Ed25519 key."""

    __slots__ = ("_key", "key_id", "name")

    def __init__(self, name: str, key: VerifyKey) -> None:
        if not is_key_name(name):
            raise ValueError(f"invalid key name {name!r}")
        self.name = name
        self.key_id = key_id(name, COSIGNATURE_V1 + key.public_raw)
        self._key = key

    @classmethod
    def from_verifier_key(cls, text: str) -> CosignatureVerifier:
        """Parse ``<name>+<hex key id>+<base64(type||public key)>``; ValueError if malformed.

        Type 0x04 is the cosignature/v1 form. A type 0x01 (plain Ed25519 note) key is accepted
        too and used as a cosigner, as transparency-dev's formats library does, since many
        witnesses publish their key that way; its key id is checked in its own type.
        """
        name, text_key_id, typed_key = split_key(text, 3)
        if typed_key[:1] not in (COSIGNATURE_V1, _NOTE_ED25519) or len(typed_key) != 33:
            raise ValueError("not an Ed25519 cosignature/v1 or note key")
        if key_id(name, typed_key) != text_key_id:
            raise ValueError("key id does not match the key")
        return cls(name, VerifyKey.from_raw(typed_key[1:]))

    @property
    def key(self) -> VerifyKey:
        """The witness's Ed25519 public key."""
        return self._key

    @property
    def verifier_key(self) -> str:
        """The key's cosignature/v1 text form (type 0x04), whatever form it was parsed from."""
        encoded = base64.b64encode(COSIGNATURE_V1 + self._key.public_raw).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (a line's bytes after the key id: timestamp and Ed25519
        signature) is this witness's cosignature of the checkpoint ``text``, at a timestamp
        the spec allows."""
        try:
            cosignature = Cosignature.from_bytes(self.key_id + signature)
            _check_timestamp(cosignature.timestamp)
            self._key.verify(cosignature.signature, cosigned_message(text, cosignature.timestamp))
        except (ValueError, SignatureError):
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CosignatureVerifier)
                and (other.name, other._key) == (self.name, self._key))

    def __hash__(self) -> int:
        return hash((self.name, self._key))

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.verifier_key!r})"


class CosignatureSigner:
    """A witness's signing side: cosigns checkpoint bodies as ``name``."""

    __slots__ = ("_key", "_verifier")

    def __init__(self, name: str, signing_key: SigningKey) -> None:
        self._key = signing_key
        self._verifier = CosignatureVerifier(name, signing_key.verifier())

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def key_id(self) -> bytes:
        return self._verifier.key_id

    def verifier(self) -> CosignatureVerifier:
        return self._verifier

    def cosign(self, body: bytes, timestamp: int) -> str:
        """The signature line ``— <name> <base64>\\n`` cosigning checkpoint ``body`` at
        ``timestamp`` (seconds since the epoch; the caller's clock, so tests can fix it)."""
        _check_timestamp(timestamp)
        signature = self._key.sign(cosigned_message(body, timestamp))
        blob = self.key_id + timestamp.to_bytes(_TIMESTAMP_BYTES, "big") + signature
        return f"\u2014 {self.name} {base64.b64encode(blob).decode('ascii')}\n"

    def __repr__(self) -> str:
        return f"CosignatureSigner(name={self.name!r}, key_id={self.key_id.hex()!r})"


class QuorumError(NoteError):
    """Fewer witnesses of the policy cosigned the checkpoint than its quorum asks."""


@dataclass(frozen=True)
class WitnessCosignature:
    """One witness of a policy that validly cosigned a checkpoint."""

    witness: str
    """The witness's cosignature/v1 verifier key."""
    timestamp: int
    """When it cosigned (seconds since the epoch); the latest, if it cosigned more than once."""


class WitnessPolicy:
    """A quorum of witnesses: a checkpoint is accepted once ``quorum`` of ``witnesses`` have
    cosigned it. Cosignatures of other keys are ignored; a witness counts once however many
    lines it signed; a bad cosignature of a policy witness rejects the checkpoint."""

    __slots__ = ("_witnesses", "quorum")

    def __init__(self, witnesses: Iterable[str], quorum: int) -> None:
        """``witnesses`` are verifier keys (type 0x04, or 0x01 used as cosigners); ValueError
        for a malformed or repeated one, or a quorum that is not 1..len(witnesses): a quorum
        of 0 would accept any checkpoint, so an empty policy fails closed here."""
        self._witnesses = tuple(map(CosignatureVerifier.from_verifier_key, witnesses))
        if len(set(self._witnesses)) != len(self._witnesses):
            raise ValueError("a witness is listed twice")
        if not 1 <= quorum <= len(self._witnesses):
            raise ValueError(f"quorum {quorum} is not between 1 and {len(self._witnesses)}, "
                             "the number of witnesses")
        self.quorum = quorum

    @property
    def witnesses(self) -> tuple[str, ...]:
        return tuple(w.verifier_key for w in self._witnesses)

    def check(self, note: bytes) -> list[WitnessCosignature]:
        """The policy's witnesses that cosigned the checkpoint ``note``, in policy order.

        Raises NoteError if the note is malformed or a policy witness's line fails to verify,
        QuorumError if fewer than the quorum cosigned. The log's own signature is the
        caller's check (`note.open_note` with the log's key), as only it knows the log.
        """
        _, verified = verify_note(note, self._witnesses)
        latest: dict[CosignatureVerifier, int] = {}
        for witness, signature in verified:
            timestamp = int.from_bytes(signature[:_TIMESTAMP_BYTES], "big")
            latest[witness] = max(timestamp, latest.get(witness, timestamp))
        if len(latest) < self.quorum:
            raise QuorumError(f"{len(latest)} of the policy's witnesses cosigned the "
                              f"checkpoint; {self.quorum} are needed")
        return [WitnessCosignature(w.verifier_key, latest[w]) for w in self._witnesses
                if w in latest]
