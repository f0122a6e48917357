"""Witness keys of C2SP tlog-cosignature (c2sp.org/tlog-cosignature): cosignature/v1 verifier
keys, ``<name>+<hex key id>+<base64(0x04 || Ed25519 public key)>``.

A witness cosigns a log's checkpoint with a key of type 0x04 rather than a note key (0x01), so a
witness key can never pass for a log's own key. Only the key format lives here so far: the
network configuration names each member's witness key with it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from govshare.signing import VerifyKey
from govshare.transparency.note import note_key_id, parse_key

COSIGNATURE_V1 = b"\x04"
"""The signature type byte of cosignature/v1 keys."""


@dataclass(frozen=True)
class WitnessVerifier:
    """A witness's cosignature/v1 public key under its name."""

    name: str
    key: VerifyKey

    @property
    def key_id(self) -> bytes:
        """First 4 bytes of SHA-256(name || "\\n" || 0x04 || public key)."""
        return note_key_id(self.name, self.key.public_raw, COSIGNATURE_V1)

    @classmethod
    def from_verifier_key(cls, text: str) -> WitnessVerifier:
        """Parse a cosignature/v1 verifier key; ValueError if it is malformed, of another type
        (a note key, 0x01) or its key id does not match its name and key."""
        name, key_id, public_raw = parse_key(text, 3, COSIGNATURE_V1)
        verifier = cls(name, VerifyKey.from_raw(public_raw))
        if verifier.key_id != key_id:
            raise ValueError("key id does not match the key")
        return verifier

    @property
    def verifier_key(self) -> str:
        """The key in its text form, as witnesses and monitors exchange it."""
        encoded = base64.b64encode(COSIGNATURE_V1 + self.key.public_raw).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"
