"""Keys, DSSE envelopes and hashing in govshare.signing."""

from __future__ import annotations

import datetime
import hashlib
import os
import stat
from array import array
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from govshare.signing import (
    ED25519,
    VERIFIERS,
    SignatureError,
    SigningKey,
    StreamHasher,
    VerifyKey,
    key_id_for,
    load_verifier,
    pae,
    sha256,
    sign_envelope,
    verify_envelope,
    write_private_pem,
)

TYPE = "application/vnd.govshare.dataset+json"
PAYLOAD = b'{"dataset": "agencies/stats/datasets/census-2024"}'


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _certificate(private_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agency.test")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    algorithm = None if isinstance(private_key, Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(private_key, algorithm)


def test_pae_matches_the_dsse_spec_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_and_keeps_the_payload_verbatim() -> None:
    assert pae("é", b"") == b"DSSEv1 2 \xc3\xa9 0 "
    assert pae("t", b"a b\n\x00") == b"DSSEv1 1 t 5 a b\n\x00"


def test_envelope_round_trip(key: SigningKey) -> None:
    key_id, signature = sign_envelope(key, TYPE, PAYLOAD)
    assert key_id == key.key_id
    verify_envelope(key.verifier(), TYPE, PAYLOAD, signature)


@given(payload_type=st.text(max_size=40), payload=st.binary(max_size=200))
def test_envelope_round_trip_any_input(key: SigningKey, payload_type: str, payload: bytes) -> None:
    _, signature = sign_envelope(key, payload_type, payload)
    verify_envelope(key.verifier(), payload_type, payload, signature)


def test_every_changed_byte_of_payload_type_or_signature_fails(key: SigningKey) -> None:
    _, signature = sign_envelope(key, TYPE, PAYLOAD)
    verifier = key.verifier()
    type_bytes = TYPE.encode()
    cases = [(TYPE, _flip(PAYLOAD, i), signature) for i in range(len(PAYLOAD))]
    cases += [(_flip(type_bytes, i).decode(), PAYLOAD, signature) for i in range(len(type_bytes))]
    cases += [(TYPE, PAYLOAD, _flip(signature, i)) for i in range(len(signature))]
    for payload_type, payload, sig in cases:
        with pytest.raises(SignatureError):
            verify_envelope(verifier, payload_type, payload, sig)


def test_signature_does_not_carry_over_to_another_type_or_key(key: SigningKey) -> None:
    _, signature = sign_envelope(key, TYPE, PAYLOAD)
    with pytest.raises(SignatureError):
        verify_envelope(key.verifier(), "text/plain", PAYLOAD, signature)
    with pytest.raises(SignatureError):
        verify_envelope(SigningKey.generate().verifier(), TYPE, PAYLOAD, signature)
    with pytest.raises(SignatureError):
        key.verifier().verify(signature, PAYLOAD)  # the bare payload was never signed


def test_signature_error_is_opaque(key: SigningKey) -> None:
    with pytest.raises(SignatureError) as failure:
        verify_envelope(key.verifier(), TYPE, PAYLOAD, b"\x00" * 3)
    assert str(failure.value) == "signature verification failed"


def test_key_id_is_hex_sha256_of_the_raw_public_key(key: SigningKey) -> None:
    assert len(key.public_raw) == 32
    assert key.key_id == key_id_for(key.public_raw) == hashlib.sha256(key.public_raw).hexdigest()
    assert len(key.key_id) == 64
    assert key.verifier().key_id == key.key_id


def test_repr_and_str_show_only_the_key_id(key: SigningKey) -> None:
    raw_private = key._key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    for text in (repr(key), str(key)):
        assert key.key_id in text
        assert raw_private.hex() not in text
        assert "PRIVATE" not in text
    assert repr(key.verifier()) == f"VerifyKey(key_id={key.key_id!r})"


def test_private_pem_file_is_0600_and_loads_back(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "signing.pem"
    write_private_pem(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert SigningKey.load(path).key_id == key.key_id


def test_private_pem_is_never_overwritten(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "signing.pem"
    path.write_bytes(b"existing")
    with pytest.raises(FileExistsError):
        write_private_pem(path, key)
    assert path.read_bytes() == b"existing"


def test_private_pem_does_not_follow_symlinks(tmp_path: Path, key: SigningKey) -> None:
    link = tmp_path / "signing.pem"
    link.symlink_to(tmp_path / "elsewhere.pem")
    with pytest.raises(FileExistsError):
        write_private_pem(link, key)
    assert not (tmp_path / "elsewhere.pem").exists()


def test_from_pem_rejects_other_key_types() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="Ed25519"):
        SigningKey.from_pem(pem)


def test_seed_gives_the_rfc8032_public_key() -> None:
    """RFC 8032 §7.1 TEST 1."""
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    key = SigningKey.from_seed(seed)
    assert key.public_raw == public
    assert key.sign(b"") == signature
    VerifyKey.from_raw(public).verify(signature, b"")


def test_verify_key_from_raw_rejects_wrong_length() -> None:
    with pytest.raises(ValueError):
        VerifyKey.from_raw(b"\x01" * 31)


def test_verify_key_from_certificate(key: SigningKey) -> None:
    private = Ed25519PrivateKey.generate()
    certificate = _certificate(private)
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    for form in (certificate, pem, pem.decode()):
        verifier = VerifyKey.from_certificate(form)
        verifier.verify(private.sign(b"data"), b"data")
    assert VerifyKey.from_certificate(pem) == VerifyKey.from_certificate(certificate)


def test_verify_key_from_certificate_rejects_other_key_types() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError, match="Ed25519"):
        VerifyKey.from_certificate(_certificate(private))


def test_algorithm_dispatch(key: SigningKey) -> None:
    assert set(VERIFIERS) == {ED25519}
    verifier = load_verifier(ED25519, key.public_raw)
    assert verifier == key.verifier()
    assert verifier.algorithm == ED25519
    with pytest.raises(ValueError, match="unsupported"):
        load_verifier("SM2", key.public_raw)


def test_stream_hasher_matches_one_shot_hash() -> None:
    data = os.urandom(100_000)
    hasher = StreamHasher()
    view = memoryview(data)
    for start in range(0, len(data), 8192):
        hasher.update(view[start : start + 8192])
    assert hasher.digest() == sha256(data) == hashlib.sha256(data).digest()
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hasher.size == len(data)


def test_stream_hasher_counts_bytes_not_items() -> None:
    hasher = StreamHasher()
    words = array("I", [1, 2, 3])
    hasher.update(memoryview(words))
    assert hasher.size == words.itemsize * 3
    assert hasher.digest() == sha256(words.tobytes())
