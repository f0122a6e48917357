"""`govshare audit verify` tells bad input and an unverifiable part from tampering: an empty key,
an unwritable --save-checkpoint, a file that is no database exit 2 with a message saying which
(never a traceback), and so does a log whose earlier part was signed by the previous origin's
key when only the new origin's key is given after a recovery; a forged checkpoint stays 1."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.support.commands import new_origin, verify
from tests.support.stopped import NEW, Stopped, restore_older, set_origin


def last_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_an_empty_key_is_bad_input_not_the_folders_key(stopped):
    done = verify(stopped, "--key", "")
    assert done.returncode == 2, done.stdout
    assert done.stdout == ""
    assert last_line(done) == ("Error: --key is empty: give the log's note verifier key"
                               " (name+id+key, the line audit.vkey holds)")


def test_an_unwritable_save_checkpoint_path_is_bad_input_before_verifying(stopped, tmp_path):
    target = tmp_path / "no-such-folder" / "checkpoint"
    done = verify(stopped, "--save-checkpoint", str(target))
    assert done.returncode == 2
    assert done.stdout == ""  # refused before the verification, which prints OK
    assert last_line(done) == (f"Error: --save-checkpoint {target}: cannot write there (is its"
                               " folder there and writable?); give a writable path")
    assert not target.parent.exists()


def malformed(path: Path) -> None:
    """A database file cut short in the middle of its pages."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("damage", ["empty", "text", "truncated"])
def test_a_file_that_is_no_database_is_bad_input(stopped, damage):
    for journal in ("-wal", "-shm"):
        Path(f"{stopped.database}{journal}").unlink(missing_ok=True)
    if damage == "truncated":
        malformed(stopped.database)
    else:
        stopped.database.write_bytes(b"" if damage == "empty" else b"not a database\n")
    done = verify(stopped)
    assert done.returncode == 2
    assert done.stdout == ""
    line = last_line(done)
    assert line.startswith(f"Error: the database {stopped.database} is not a govshare database"
                           " SQLite can read (")
    assert line.endswith("): check [storage] database, or restore the file from a backup")


def recovered(stopped: Stopped, tmp_path: Path) -> tuple[str, str, int]:
    """The documented recovery of a lost database: (old key, new key, the link's position)."""
    size, _ = restore_older(stopped, tmp_path)
    old_key = stopped.vkey
    set_origin(stopped, NEW, [old_key])
    assert new_origin(stopped.config_path).returncode == 0
    new_key = (stopped.config_path.parent / "audit.vkey").read_text().strip()
    stopped.run("test.after_recovery")
    return old_key, new_key, size


def test_verify_with_the_new_key_only_after_a_recovery_is_no_tamper_alarm(stopped, tmp_path):
    old_key, new_key, link = recovered(stopped, tmp_path)
    old_name = "+".join(old_key.split("+")[:2])
    done = verify(stopped, "--key", new_key)
    assert done.returncode == 2, done.stderr
    assert last_line(done) == (
        f"NOT VERIFIED: the earliest checkpoints are signed by {old_name} (up to size {link}),"
        " a key not given: the leaves they cover verify against the later checkpoints, but"
        " their signatures were not checked; add that key with --key (the log's previous key,"
        " as [audit] previous_verifier_keys lists it)")
    both = verify(stopped, "--key", new_key, "--key", old_key)
    assert both.returncode == 0, both.stderr


def test_a_checkpoint_resigned_by_a_stranger_after_a_recovery_is_tampering(stopped, tmp_path):
    """Only the previous origin's checkpoints, up to the link that records its key, may be
    signed by a key not given: one of the new origin's signed by another key is tampering."""
    _, new_key, link = recovered(stopped, tmp_path)
    conn = sqlite3.connect(stopped.database)
    latest, signed = conn.execute("SELECT tree_size, note FROM checkpoints"
                                  " ORDER BY tree_size DESC LIMIT 1").fetchone()
    forged = bytes(signed).replace(b"\n\xe2\x80\x94 govshare.local/audit/2 ",
                                   b"\n\xe2\x80\x94 stranger.example/log ")
    assert forged != bytes(signed)
    conn.execute("UPDATE checkpoints SET note = ? WHERE tree_size = ?", (forged, latest))
    conn.commit()
    conn.close()
    done = verify(stopped, "--key", new_key)
    assert done.returncode == 1, done.stderr
    assert f"bad signature at position {link + 1}" in done.stderr
