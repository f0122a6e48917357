"""The file outside the database holding the log's latest checkpoint: a crash in the middle of a
save costs nothing but that save, and a file that holds no checkpoint of the log is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.audit.log import AuditLog, LogIntegrityError
from gateway.audit.saved import SLOT, CheckpointFile
from gateway.storage import Database
from gateway.unit_of_work import UnitOfWork
from govshare.signing import SigningKey
from govshare.transparency import note
from govshare.transparency.record import Event

ORIGIN = "test.local/audit"
SIGNER = note.NoteSigner(ORIGIN, SigningKey.from_seed(bytes(range(32))))


def grown(path: Path, batches: int) -> Path:
    """A log at `path` with `batches` one-event batches appended, closed; its checkpoint file."""
    log = AuditLog(Database(path), SIGNER, ORIGIN, checkpoint_file=path.with_suffix(".checkpoint"))
    work = UnitOfWork(log.db, log)
    log.open(work)
    for n in range(batches):
        work.append([Event(actor="urn:govshare:test", action=f"test.batch{n}")])
    work.close()
    log.close()
    log.db.close()
    return path.with_suffix(".checkpoint")


def size_of(signed: bytes) -> int:
    return note.Checkpoint.parse(note.open_note(signed, [SIGNER.verifier()])).size


def reopened(path: Path) -> tuple[AuditLog, UnitOfWork]:
    log = AuditLog(Database(path), SIGNER, ORIGIN, checkpoint_file=path.with_suffix(".checkpoint"))
    work = UnitOfWork(log.db, log)
    log.open(work)
    return log, work


def test_saves_alternate_slots_latest_first(tmp_path):
    saved = grown(tmp_path / "audit.db", 3)
    assert [size_of(signed) for signed in CheckpointFile(saved).read()] == [3, 2]


def test_a_save_torn_by_a_crash_falls_back_to_the_checkpoint_before(tmp_path):
    saved = grown(tmp_path / "audit.db", 3)  # slot 1 holds size 3, slot 0 size 2
    with saved.open("r+b") as handle:
        handle.seek(SLOT + 40)
        handle.write(b"torn" * 10)
    log, work = reopened(tmp_path / "audit.db")
    try:
        assert log.checkpoint().tree_size == 3
        assert [size_of(signed) for signed in CheckpointFile(saved).read()] == [3]
    finally:
        work.close()
        log.close()
        log.db.close()


def test_a_file_holding_no_checkpoint_of_the_log_is_refused(tmp_path):
    saved = grown(tmp_path / "audit.db", 1)
    saved.write_bytes(bytes(2 * SLOT))
    with pytest.raises(LogIntegrityError) as refused:
        reopened(tmp_path / "audit.db")
    assert str(refused.value) == (
        f"no checkpoint saved in {saved} verifies with this log's keys (it holds none): put back"
        " the file the gateway saved there, or add the key that signed it to [audit]"
        " previous_verifier_keys")
    assert saved.read_bytes() == bytes(2 * SLOT)
