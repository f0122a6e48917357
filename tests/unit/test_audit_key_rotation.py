"""A log's signing key or origin changed: refused saying what differs, unless the previous key is
listed, checked at config load, and trusted by `govshare audit verify` only when given."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway import config as config_module
from gateway.audit import verify
from gateway.audit.log import AuditLog, CheckpointKeyMismatch
from gateway.cli import cli
from gateway.storage import Database
from gateway.unit_of_work import UnitOfWork
from govshare.signing import SigningKey
from govshare.transparency import note
from govshare.transparency.record import Event

ORIGIN = "test.local/audit"
SIGNER = note.NoteSigner(ORIGIN, SigningKey.from_seed(bytes(range(32))))


def event(i: int) -> Event:
    return Event(actor="urn:govshare:agency:a", action="catalog.publish",
                 resources=(f"agencies/a{i % 3}/datasets/d{i}",))


NEW_KEY = note.NoteSigner(ORIGIN, SigningKey.from_seed(bytes(range(1, 33))))
NEW_ORIGIN = note.NoteSigner("other.local/audit", SigningKey.from_seed(bytes(range(32))))


def build(path: Path, signer: note.NoteSigner = SIGNER, count: int = 5,
          previous: tuple[note.NoteVerifier, ...] = ()) -> None:
    db = Database(path)
    log = AuditLog(db, signer, signer.name, checkpoint_file=path.with_suffix(".checkpoint"),
                   previous=previous)
    try:
        work = UnitOfWork(log.db, log)
        log.open(work)
        for i in range(count):
            work.append([event(i)])
    finally:
        work.close()
        log.close()
        db.close()


def checkpoint_notes(path: Path) -> list[bytes]:
    conn = sqlite3.connect(path)
    found = [bytes(row[0]) for row in conn.execute("SELECT note FROM checkpoints")]
    conn.close()
    return found


@pytest.mark.parametrize("signer", [NEW_KEY, NEW_ORIGIN], ids=["key", "origin"])
def test_a_new_key_or_origin_is_refused_saying_what_differs(tmp_path: Path, signer):
    path = tmp_path / "audit.db"
    build(path)
    before = checkpoint_notes(path)

    with pytest.raises(CheckpointKeyMismatch) as caught:
        build(path, signer, count=0)

    old, new = SIGNER.verifier(), signer.verifier()
    message = str(caught.value)
    assert f"signed by {old.name}+{old.key_id.hex()}" in message
    assert f"signs as {new.name}+{new.key_id.hex()}" in message
    assert "[audit] previous_verifier_keys" in message
    assert checkpoint_notes(path) == before


@pytest.mark.parametrize("signer", [NEW_KEY, NEW_ORIGIN], ids=["key", "origin"])
def test_a_previous_key_listed_lets_the_log_go_on_under_the_new_one(tmp_path: Path, signer):
    path = tmp_path / "audit.db"
    build(path)
    build(path, signer, previous=(SIGNER.verifier(),))

    latest = checkpoint_notes(path)[-1]
    assert note.Checkpoint.parse(note.open_note(latest, [signer.verifier()])).size == 10
    assert verify.verify_log(path, signer.verifier()).first.kind == verify.BAD_SIGNATURE
    assert verify.verify_log(path, signer.verifier(), previous=[SIGNER.verifier()]).ok
    build(path, signer, count=1)  # restarts on its own key from now on


def write_config(tmp_path: Path, audit: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f'[storage]\ndatabase = "audit.db"\n\n[audit]\n{audit}\n')
    return path


@pytest.mark.parametrize("origin", ["", "govshare local", "govshare+audit"])
def test_an_origin_that_is_no_key_name_is_refused_at_load(tmp_path: Path, origin):
    with pytest.raises(ValueError, match=r"\[audit\] origin must be a note key name"):
        config_module.load(write_config(tmp_path, f'origin = "{origin}"'))


def test_previous_verifier_keys_must_be_verifier_keys(tmp_path: Path):
    with pytest.raises(ValueError, match=r"\[audit\] previous_verifier_keys .*'nope'"):
        config_module.load(write_config(tmp_path, 'previous_verifier_keys = ["nope"]'))


def test_cli_verify_trusts_only_the_keys_given(tmp_path: Path):
    build(tmp_path / "audit.db")
    build(tmp_path / "audit.db", NEW_KEY, previous=(SIGNER.verifier(),))
    old, new = SIGNER.verifier().verifier_key, NEW_KEY.verifier().verifier_key
    plain = write_config(tmp_path, "")

    def run(config: Path, *keys: str):
        args = [arg for key in keys for arg in ("--key", key)]
        return CliRunner().invoke(cli, ["audit", "verify", "--config", str(config), *args])

    assert run(plain, new).exit_code == 1
    assert run(plain, new, old).exit_code == 0
    # The configuration lies beside the log it describes: an auditor's --key overrides it.
    listed = write_config(tmp_path, f'previous_verifier_keys = ["{old}"]')
    assert run(listed, new).exit_code == 1
    assert run(listed, new, old).exit_code == 0
