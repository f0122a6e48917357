"""`govshare audit verify` tells tampering (exit 1) from a wrong key or file (exit 2), and a
fork names the first leaf where the histories part."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from gateway import config as config_module
from gateway.audit.log import AuditLog
from gateway.audit.saved import CheckpointFile
from gateway.cli import cli
from gateway.storage import Database
from gateway.unit_of_work import UnitOfWork
from govshare.signing import SigningKey
from govshare.transparency import merkle, note
from govshare.transparency.record import Event

STRANGER = note.NoteSigner("other.example/audit", SigningKey.from_seed(bytes(32)))


def run(network, *args: str | Path) -> Result:
    config = network.layout.config_path
    return CliRunner().invoke(cli, ["audit", "verify", "--config", str(config), *map(str, args)])


def log_key(network) -> str:
    return (network.layout.root / "audit.vkey").read_text().strip()


def usage_error(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "FAILED" not in result.output and "problem(s)" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_another_logs_key_does_not_belong_and_exits_2(network):
    result = run(network, "--key", STRANGER.verifier().verifier_key)
    name = "+".join(log_key(network).split("+")[:2])
    usage_error(result, f"the key {STRANGER.name}+{STRANGER.key_id.hex()} does not belong to"
                        f" this log (its checkpoints are signed by {name})")


def test_a_key_that_does_not_parse_exits_2(network):
    usage_error(run(network, "--key", "nonsense"), "unusable verifier key: malformed key")
    (network.layout.root / "audit.vkey").write_text("nonsense\n")
    usage_error(run(network), "unusable verifier key: malformed key")


def test_a_malformed_foreign_or_unreadable_saved_checkpoint_exits_2(network, tmp_path):
    malformed = tmp_path / "malformed"
    malformed.write_bytes(b"not a checkpoint\xff")
    usage_error(run(network, "--against", malformed), "the saved checkpoint is none of the files"
                " it can be: a signed checkpoint note (as audit verify --save-checkpoint writes"
                " it), the gateway's checkpoint file ([audit] checkpoint_file) or an earlier copy"
                " of the database")
    foreign = tmp_path / "foreign"
    foreign.write_bytes(note.sign_note(note.Checkpoint(STRANGER.name, 1, bytes(32)).to_text(),
                                       [STRANGER]))
    usage_error(run(network, "--against", foreign), "the saved checkpoint does not belong to"
                f" this log: it is signed by {STRANGER.name}+{STRANGER.key_id.hex()}")
    usage_error(run(network, "--against", tmp_path / "missing"), "does not exist")
    usage_error(run(network, "--against", tmp_path), "is a directory")


def truncate(network, leaf: int) -> None:
    """Remove the leaves from `leaf` on and every trace of them, as a rollback would; the
    gateway must be stopped."""
    with sqlite3.connect(network.layout.root / "govshare.db") as conn:
        for sql in ("DELETE FROM audit_leaves WHERE leaf_index >= ?",
                    "DELETE FROM checkpoints WHERE tree_size > ?",
                    "DELETE FROM audit_subject_index WHERE leaf_index >= ?",
                    "UPDATE audit_subject_index_state SET upto = min(upto, ?)"):
            conn.execute(sql, (leaf,))
        conn.execute("DELETE FROM tree_nodes WHERE id >= ?", (merkle.stored_index(0, leaf),))
    conn.close()


def test_a_truncated_log_is_caught_against_the_gateways_own_checkpoint_file(network, tmp_path):
    checkpoint_file = network.layout.root / "audit.checkpoint"
    intact = run(network, "--against", checkpoint_file)
    assert intact.exit_code == 0, intact.output
    assert "OK: 3 entries" in intact.output
    network.server.stop(grace=1)
    kept = tmp_path / "audit.checkpoint"
    shutil.copy(checkpoint_file, kept)
    truncate(network, 2)
    result = run(network, "--against", kept)
    assert result.exit_code == 1
    assert "FAILED: truncation" in result.output


def test_a_torn_latest_slot_of_the_checkpoint_file_falls_back_to_the_other(network, tmp_path):
    """A crash in the middle of a save tears the slot being written; the other still holds
    the checkpoint before it, which the log extends."""
    network.agency("gd-health").publish("torn", b"a,b\n1,2\n", title="t", media_type="CSV",
                                        sharing_type="UNCONDITIONAL")
    network.server.stop(grace=1)
    data = bytearray((network.layout.root / "audit.checkpoint").read_bytes())
    latest = CheckpointFile(network.layout.root / "audit.checkpoint").read()[0]
    at = data.index(latest)
    data[at + 40:at + 80] = b"x" * 40  # the latest slot's note, torn
    torn = tmp_path / "torn.checkpoint"
    torn.write_bytes(bytes(data))
    result = run(network, "--against", torn)
    assert result.exit_code == 0, result.output
    data[:] = bytes(len(data))  # no slot holds a checkpoint
    torn.write_bytes(bytes(data))
    usage_error(run(network, "--against", torn), "the gateway's checkpoint file holds no"
                " checkpoint")


def test_an_altered_record_exits_1(network):
    with sqlite3.connect(network.layout.root / "govshare.db") as conn:
        conn.execute("UPDATE audit_leaves SET record = replace(record, 'zj-stats', 'zj-stat5')"
                     " WHERE leaf_index = 2")
    conn.close()
    result = run(network, "--key", log_key(network))
    assert result.exit_code == 1
    assert "FAILED: modified record at position 2" in result.output


def fork(network, leaf: int) -> None:
    """Rewrite the log from `leaf` on with the gateway's own key, as a gateway restarted on a
    restored backup would: the forked log verifies by itself. The gateway must be stopped."""
    config = config_module.load(network.layout.config_path)
    path = network.layout.root / "govshare.db"
    truncate(network, leaf)
    signer = note.NoteSigner(config.audit.origin,
                             SigningKey.load(config.path(config.tls.signing_key)))
    db = Database(path)
    log = AuditLog(db, signer, config.audit.origin, checkpoint_file=path.with_suffix(".fork"))
    work = UnitOfWork(log.db, log)
    log.open(work, checkpoint_from_database=True)
    work.append([Event(actor="urn:govshare:agency:forger", action="directory.register",
                      resources=(f"agencies/forged-{i}",)) for i in range(leaf, 5)])
    work.close()
    log.close()
    db.close()


def test_a_forked_log_names_the_first_leaf_that_differs(network, tmp_path):
    saved, earlier = tmp_path / "checkpoint", tmp_path / "earlier.db"
    assert run(network, "--save-checkpoint", saved).exit_code == 0
    network.server.stop(grace=1)
    shutil.copy(network.layout.root / "govshare.db", earlier)
    fork(network, 1)
    assert "fork at position 0" in run(network).output  # the gateway's saved checkpoint tells
    network.gateway.log.saved.path.unlink()
    assert run(network).exit_code == 0  # consistent by itself: only the earlier state tells
    alone = run(network, "--against", saved)
    assert alone.exit_code == 1
    assert "FAILED: fork at position 0: the first 3 leaves do not hash to the root a saved" \
           " checkpoint signed: the history was rewritten, somewhere in leaves 0 to 2" \
           in alone.output
    located = run(network, "--against", earlier)
    assert located.exit_code == 1
    assert "FAILED: fork at position 1: leaf 1 differs from the earlier copy's, whose" \
           " checkpoint of 3 leaves was signed (the first 1 leaves agree)" in located.output
    assert "1 problem(s); first bad position 1" in located.output


def test_check_proof_answers_malformed_indexes_and_bytes_with_failed(network, tmp_path):
    proof_file = tmp_path / "event.tlog-proof"
    config = network.layout.config_path
    made = CliRunner().invoke(cli, ["audit", "proof", "1", "--config", str(config),
                                    "--output", str(proof_file)])
    assert made.exit_code == 0, made.output
    text = proof_file.read_bytes()
    for index in ("01", "\u0661", "\uff11", "1_0", "+1", "9" * 5000):
        proof_file.write_bytes(text.replace(b"\nindex 1\n", f"\nindex {index}\n".encode()))
        result = CliRunner().invoke(cli, ["audit", "check-proof", str(proof_file),
                                          "--key", log_key(network)])
        assert result.exit_code == 1, result.output
        assert result.output.startswith(f"FAILED: line 3 is not the leaf index: {index[:24]!r}")
        assert isinstance(result.exception, SystemExit)
    proof_file.write_bytes(b"\xff" + text)
    result = CliRunner().invoke(cli, ["audit", "check-proof", str(proof_file),
                                      "--key", log_key(network)])
    assert (result.exit_code, result.output) == (1, "FAILED: the file is not UTF-8 text\n")
