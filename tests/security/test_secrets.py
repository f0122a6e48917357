"""Secrets stay secret: private keys are 0600 files in 0700 folders and exist nowhere else, never
cross the wire, and neither keys nor signatures are echoed by logs, error messages, audit
records or reprs."""

from __future__ import annotations

import base64
import logging
import sqlite3
import stat
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from agencies import errors
from agencies.client import AgencyClient
from agencies.sim.roster import roster
from gateway.national import REGIONS, lay_out_national
from gateway.network import lay_out
from gateway.v1 import envelope_pb2
from govshare import envelopes
from tests.support import security as support
from tests.support.exchange import ask, publish
from tests.support.network import AGENCIES

PRIVATE_PEM = b"PRIVATE KEY-----"
_RAW = serialization.Encoding.Raw, serialization.PrivateFormat.Raw
_DER = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8


# -- what to look for ----------------------------------------------------------------------------


def key_files(root: Path) -> list[Path]:
    found = sorted(root.rglob("*.key"))
    assert found, f"no private keys under {root}"
    return found


def key_secrets(path: Path) -> list[bytes]:
    """The raw private key (Ed25519 seed or EC scalar) and its PKCS8 DER."""
    key: Any = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(*_RAW, serialization.NoEncryption())
    else:
        raw = key.private_numbers().private_value.to_bytes(32, "big")
    return [raw, key.private_bytes(*_DER, serialization.NoEncryption())]


def text_forms(secret: bytes) -> list[str]:
    """How `secret` would look in text: hex, or base64 at any byte alignment within a longer
    encoded blob (the whole 3-byte groups that encode the same wherever the secret sits)."""
    forms = [secret.hex(), secret.hex().upper()]
    for start in range(3):
        aligned = secret[start:start + (len(secret) - start) // 3 * 3]
        forms += [base64.b64encode(aligned).decode(), base64.urlsafe_b64encode(aligned).decode()]
    return forms


def key_text_forms(root: Path) -> list[str]:
    """Every text form of every private key under `root`, PEM body lines included."""
    forms = []
    for path in key_files(root):
        forms += [line for line in path.read_text().splitlines() if "-----" not in line]
        for secret in key_secrets(path):
            forms += text_forms(secret)
    return forms


def stored_signatures(network_db: Any) -> list[bytes]:
    """Every signature in the envelopes the gateway stored (manifests, statements, decisions,
    grants, receipts)."""
    queries = ("SELECT signed_manifest FROM dataset_versions",
               "SELECT signed_statement FROM access_requests",
               "SELECT signed_decision FROM access_requests WHERE signed_decision IS NOT NULL",
               "SELECT signed_statement FROM grants",
               "SELECT receipt FROM exchanges WHERE receipt IS NOT NULL")
    found = []
    for query in queries:
        for (data,) in network_db.execute(query).fetchall():
            found += [s.signature for s in envelope_pb2.Envelope.FromString(data).signatures]
    return found


def leaked(text: str, forms: list[str]) -> list[str]:
    return [form[:16] + "..." for form in forms if form and form in text]


def test_the_leak_detector_sees_a_secret_in_any_encoding():
    secret = bytes(range(100, 132))
    forms = text_forms(secret)
    for prefix in (b"", b"x", b"xy", b"xyz"):
        blob = prefix + secret + b"tail"
        for shown in (base64.b64encode(blob).decode(), base64.urlsafe_b64encode(blob).decode(),
                      blob.hex(), blob.hex().upper()):
            assert leaked(f"log line {shown} end", forms), (prefix, shown)
    assert leaked("nothing to see", forms) == []


# -- files -------------------------------------------------------------------------------------


def assert_keys_private(root: Path) -> None:
    """Keys are 0600 in 0700 folders, and no other file holds a private key."""
    for path in key_files(root):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent
    keys = set(key_files(root))
    for path in root.rglob("*"):
        if path.is_file() and path not in keys:
            assert PRIVATE_PEM not in path.read_bytes(), f"{path} holds a private key"


def test_a_laid_out_network_keeps_its_keys_private(tmp_path):
    root = lay_out(tmp_path / "net", AGENCIES).root
    assert_keys_private(root)
    assert len(key_files(root)) == 1 + 2 + 2 + 2 * len(AGENCIES)  # CA, gateway, staff, agencies


def test_a_laid_out_national_network_keeps_its_keys_private(tmp_path):
    root = lay_out_national(tmp_path / "net", REGIONS, roster(), quorum=2).root
    assert_keys_private(root)
    # The CA and the authority; each member's gateway, staff and witness keys; the agencies'.
    assert len(key_files(root)) == 2 + 5 * len(REGIONS) + 2 * len(roster())


def test_the_demo_folder_keeps_its_keys_private(demo_run):
    root, _ = demo_run
    assert_keys_private(root)


def test_the_demo_output_shows_no_key_or_signature(demo_run):
    root, output = demo_run
    conn = sqlite3.connect(f"file:{root / 'govshare.db'}?mode=ro", uri=True)
    try:
        signatures = stored_signatures(conn)
    finally:
        conn.close()
    assert signatures
    forms = key_text_forms(root) + [f for s in signatures for f in text_forms(s)]
    assert leaked(output, forms) == []


# -- a whole flow, logged at DEBUG ---------------------------------------------------------------


def _refusals(network: Any, health: AgencyClient, market: AgencyClient,
              stranger: AgencyClient, tmp_path: Path) -> list[Exception]:
    """Refusals whose messages could be tempted to quote a signature or a key."""
    manifest = support.manifest(health.dataset_name("beds"), version=2)
    envelope = support.sealed(health.signing_key, envelopes.MANIFEST, manifest)
    envelope.signatures[0].signature = support.flip_byte(envelope.signatures[0].signature)
    stolen = support.sealed(market.signing_key, envelopes.MANIFEST,
                            support.manifest(market.dataset_name("stolen")))
    attempts = [
        lambda: health.upload(envelope, [support.CONTENT], len(support.CONTENT)),
        lambda: stranger.upload(stolen, [support.CONTENT], len(support.CONTENT)),
        lambda: market.fetch(health.dataset_name("beds"), to=tmp_path / "tampered.csv"),
    ]
    support.restub(market, grpc.intercept_channel(market.channel, support.Tamperer("receipt")))
    caught = []
    for attempt in attempts:
        with pytest.raises(errors.GovshareError) as error:
            attempt()
        caught.append(error.value)
    return caught


def test_a_whole_flow_leaks_no_key_or_signature(network, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sent: list[Any] = []
    tap = support.RequestTap(sent.append)
    health, market, stats = (network.agency(a) for a in ("gd-health", "sz-market", "zj-stats"))
    for client in (health, market, stats):
        support.restub(client, grpc.intercept_channel(client.channel, tap))

    beds = publish(health, "beds", sharing_type="CONDITIONAL")
    totals = publish(health, "totals", classification="PUBLIC")
    health.approve(ask(market, beds).access_request.name)
    market.fetch(beds, to=tmp_path / "beds.csv")
    health.deny(ask(stats, beds).access_request.name, "no statistical need shown")
    health.revoke(ask(stats, totals).grant.name, "the survey ended")
    refusals = _refusals(network, health, network.agency("sz-market"), stats, tmp_path)

    conn = network.gateway.db.reader()
    signatures = stored_signatures(conn) + _signatures_sent(sent)
    assert len(_signatures_sent(sent)) >= 6  # manifests, requests, decisions, refused ones
    keys = key_text_forms(network.layout.root)
    forms = keys + [f for s in signatures for f in text_forms(s)]
    records = "\n".join(r.decode() for (r,) in conn.execute("SELECT record FROM audit_leaves"))
    errors_text = "\n".join(f"{error} {getattr(error, 'metadata', '')}" for error in refusals)
    assert any(r.name.startswith("govshare") for r in caplog.records)  # the logs were captured
    assert leaked(caplog.text, forms) == []
    assert leaked(errors_text, forms) == []
    assert leaked(records, forms) == []
    raw_keys = [s for path in key_files(network.layout.root) for s in key_secrets(path)]
    wire = [request.SerializeToString() for request in sent]
    assert [data for data in wire for secret in raw_keys if secret in data] == []


def _signatures_sent(requests: list[Any]) -> list[bytes]:
    """The signatures of the envelopes the requests carried."""
    return [signature.signature for request in requests for _, value in request.ListFields()
            if isinstance(value, envelope_pb2.Envelope) for signature in value.signatures]


def test_reprs_show_no_secret(network):
    health, admin = network.agency("gd-health"), network.admin()
    forms = key_text_forms(network.layout.root)
    shown = [repr(health), str(health), repr(vars(health)), repr(admin), repr(vars(admin)),
             repr(health.signing_key), str(health.signing_key),
             repr(network.gateway.signing_key), repr(network.gateway.note_signer)]
    assert leaked("\n".join(shown), forms) == []
    assert health.signing_key.key_id in repr(health.signing_key)


def test_database_and_blob_store_are_private(network):
    """Dataset content, metadata and the log are readable by the gateway's user only."""
    root = network.layout.root
    assert (root / "blobs").stat().st_mode & 0o777 == 0o700
    for name in ("govshare.db", "govshare.db-wal", "govshare.db-shm"):
        path = root / name
        if path.exists():
            assert path.stat().st_mode & 0o077 == 0, name
