"""Signatures, keys and hashing: the only module of the gateway that touches ``hazmat``.

Everything else calls these functions, so an algorithm change (say SM2/SM3 next to Ed25519) or a
security fix happens here and nowhere else. Envelopes follow DSSE v1: the signature covers the
pre-authentication encoding (PAE) of the payload type and payload, never the bare payload, so a
signature for one type can not be replayed as another.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol, Self

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ED25519 = "ED25519"
"""Algorithm name carried on the wire (an enum there) for Ed25519 signatures."""


class SignatureError(Exception):
    """A signature did not verify; deliberately says nothing about why (no oracle)."""

    def __init__(self) -> None:
        super().__init__("signature verification failed")


def sha256(data: bytes) -> bytes:
    """SHA-256 digest of ``data`` (hashlib releases the GIL on large buffers)."""
    return hashlib.sha256(data).digest()


class StreamHasher:
    """Incremental SHA-256 that also counts bytes, for streamed uploads and downloads."""

    __slots__ = ("_hash", "_size")

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._size = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        """Feed a chunk; buffers are hashed in place, never copied."""
        self._hash.update(chunk)
        self._size += memoryview(chunk).nbytes

    @property
    def size(self) -> int:
        """Number of bytes fed so far."""
        return self._size

    def digest(self) -> bytes:
        return self._hash.digest()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class SecretBox:
    """Authenticated encryption (AES-256-GCM) under a key kept by this process: what it seals
    can be neither read nor altered by anyone else (page tokens)."""

    NONCE_BYTES = 12

    def __init__(self, key: bytes | None = None):
        self._aead = AESGCM(key or os.urandom(32))

    def seal(self, data: bytes, associated: bytes) -> bytes:
        """`data` encrypted, bound to `associated` (authenticated, not encrypted)."""
        nonce = os.urandom(self.NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes:
        """The data `seal` was given; ValueError unless this box sealed it with `associated`."""
        try:
            return self._aead.decrypt(sealed[:self.NONCE_BYTES], sealed[self.NONCE_BYTES:],
                                      associated)
        except InvalidTag:
            raise ValueError("not sealed by this box for this purpose") from None


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding; lengths are byte counts in ASCII decimal."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def key_id_for(public_key_raw: bytes) -> str:
    """Name of a signer: hex SHA-256 of its raw public key, stable across certificate renewals."""
    return hashlib.sha256(public_key_raw).hexdigest()


class Verifier(Protocol):
    """What every algorithm's public key class offers; ``VERIFIERS`` maps names to them."""

    algorithm: str

    @classmethod
    def from_raw(cls, public_raw: bytes) -> Self: ...

    @property
    def public_raw(self) -> bytes: ...

    @property
    def key_id(self) -> str: ...

    def verify(self, signature: bytes, data: bytes) -> None: ...


class VerifyKey:
    """An Ed25519 public key."""

    algorithm = ED25519
    __slots__ = ("_key", "_key_id", "_raw")

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self._raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._key_id = key_id_for(self._raw)

    @classmethod
    def from_raw(cls, public_raw: bytes) -> VerifyKey:
        """Key from its 32 raw bytes; ValueError if they are not a valid Ed25519 key."""
        return cls(Ed25519PublicKey.from_public_bytes(public_raw))

    @classmethod
    def from_certificate(cls, certificate: bytes | str | x509.Certificate) -> VerifyKey:
        """Key of an X.509 certificate (PEM or parsed); ValueError unless it is Ed25519."""
        if isinstance(certificate, str):
            certificate = certificate.encode("ascii")
        if isinstance(certificate, bytes):
            certificate = x509.load_pem_x509_certificate(certificate)
        key = certificate.public_key()
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"certificate key is {type(key).__name__}, expected Ed25519")
        return cls(key)

    @property
    def public_raw(self) -> bytes:
        return self._raw

    @property
    def key_id(self) -> str:
        return self._key_id

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise SignatureError unless ``signature`` is this key's signature of ``data``."""
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            raise SignatureError() from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey(key_id={self.key_id!r})"


VERIFIERS: dict[str, type[Verifier]] = {ED25519: VerifyKey}
"""Algorithm name -> public key class; a new algorithm is one more entry."""


def load_verifier(algorithm: str, public_raw: bytes) -> Verifier:
    """Public key for a wire algorithm name; ValueError for an unknown algorithm or bad key."""
    try:
        key_class = VERIFIERS[algorithm]
    except KeyError:
        raise ValueError(f"unsupported signature algorithm {algorithm!r}") from None
    return key_class.from_raw(public_raw)


class SigningKey:
    """An Ed25519 private key; its repr and str show only the key id."""

    algorithm = ED25519
    __slots__ = ("_key", "_verifier")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._verifier = VerifyKey(key.public_key())

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Key from its 32-byte RFC 8032 seed (how signed-note and test vectors carry keys)."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        """Key from an unencrypted PKCS8 PEM; ValueError unless it is Ed25519."""
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"private key is {type(key).__name__}, expected Ed25519")
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        return cls.from_pem(Path(path).read_bytes())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    @property
    def public_raw(self) -> bytes:
        return self._verifier.public_raw

    @property
    def key_id(self) -> str:
        return self._verifier.key_id

    def verifier(self) -> VerifyKey:
        return self._verifier

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"


def sign_envelope(key: SigningKey, payload_type: str, payload: bytes) -> tuple[str, bytes]:
    """Sign a DSSE envelope; returns (key id, signature over the PAE)."""
    return key.key_id, key.sign(pae(payload_type, payload))


def verify_envelope(key: Verifier, payload_type: str, payload: bytes, signature: bytes) -> None:
    """Raise SignatureError unless ``signature`` covers this exact type and payload."""
    key.verify(signature, pae(payload_type, payload))


def write_private_pem(path: str | os.PathLike[str], key: SigningKey) -> None:
    """Write ``key`` as PKCS8 PEM to a new file of mode 0600; never overwrites an existing file.

    O_EXCL makes creation atomic and refuses symlinks, so the key is never readable by others,
    not even for an instant, and a mistaken path can not clobber another key.
    """
    pem = key._key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(path)
        raise
