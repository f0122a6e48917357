"""verify_log finds every kind of tampering with the stored log, at the right position, and reads
one snapshot of a log the gateway keeps writing."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.audit import verify
from gateway.audit.log import AuditLog
from gateway.storage import Database
from gateway.storage import audit as sql
from gateway.unit_of_work import UnitOfWork
from govshare.signing import SigningKey
from govshare.transparency import merkle, note
from govshare.transparency.record import Event

ORIGIN = "test.local/audit"
SIGNER = note.NoteSigner(ORIGIN, SigningKey.from_seed(bytes(range(32))))
VERIFIER = SIGNER.verifier()
SIZE = 37
BATCH = 5


def event(i: int, actor: str = "urn:govshare:agency:a") -> Event:
    return Event(actor=actor, action="catalog.publish",
                 resources=(f"agencies/a{i % 3}/datasets/d{i}",))


def build_log(path: Path, size: int = SIZE, actor: str = "urn:govshare:agency:a",
              batch: int = BATCH) -> Path:
    """A real log of `size` events appended in batches through AuditLog."""
    db = Database(path)
    log = AuditLog(db, SIGNER, ORIGIN, checkpoint_file=path.with_suffix(".checkpoint"))
    work = UnitOfWork(log.db, log)
    log.open(work)
    for begin in range(0, size, batch):
        work.append([event(i, actor) for i in range(begin, min(begin + batch, size))])
    work.close()
    log.close()
    db.close()
    return path


def latest_note(path: Path) -> bytes:
    """The latest signed checkpoint stored in the database."""
    return bytes(value(path, "SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1"))


def index_all(path: Path) -> None:
    """Bring the subject index up to the end of the log (the committer does it when idle)."""
    with connect(path) as conn:
        sql.index_subjects(conn, sql.subjects_indexed_upto(conn), 1_000_000)
    conn.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = build_log(tmp_path_factory.mktemp("log") / "audit.db")
    index_all(path)
    return path


@pytest.fixture
def tampered(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy.db"
    shutil.copy(pristine, copy)
    return copy


def connect(path: Path) -> sqlite3.Connection:
    """A plain connection, with node(level, idx) giving a tree node's stored id."""
    conn = sqlite3.connect(path)
    conn.create_function("node", 2, merkle.stored_index, deterministic=True)
    return conn


def edit(path: Path, sql: str, *params: object) -> None:
    with connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute(sql, params)
    conn.close()


def value(path: Path, sql: str, *params: object) -> object:
    with connect(path) as conn:
        found = conn.execute(sql, params).fetchone()[0]
    conn.close()
    return found


def flip(blob: bytes, offset: int, mask: int) -> bytes:
    data = bytearray(blob)
    data[offset % len(data)] ^= mask
    return bytes(data)


def first_problem(path: Path, **kwargs: object) -> verify.Problem:
    report = verify.verify_log(path, VERIFIER, **kwargs)
    assert not report.ok
    return report.first


def test_intact_log_verifies(pristine: Path) -> None:
    seen: list[tuple[int, int]] = []
    report = verify.verify_log(pristine, VERIFIER, progress=lambda d, t: seen.append((d, t)))
    assert report.ok, report.problems
    assert report.tree_size == SIZE
    assert report.checkpoints == SIZE // BATCH + 2  # one per batch plus the empty tree's
    assert seen[-1] == (SIZE, SIZE)
    assert report.published == b""  # only a checkpoint given as saved is handed out
    saved = latest_note(pristine)
    assert verify.verify_log(pristine, VERIFIER, published=saved).published == saved


def test_a_log_larger_than_one_chunk_verifies(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(verify, "CHUNK_LEVEL", 2)
    path = build_log(tmp_path / "big.db", size=45, batch=4)
    assert verify.verify_log(path, VERIFIER).ok
    edit(path, "UPDATE tree_nodes SET hash = zeroblob(32) WHERE id = node(3, 1)")
    problem = first_problem(path)
    assert (problem.position, problem.kind) == (8, verify.MODIFIED_NODE)


def test_another_logs_key_does_not_belong_to_the_log(pristine: Path) -> None:
    other = note.NoteSigner(ORIGIN, SigningKey.from_seed(bytes(32))).verifier()
    with pytest.raises(verify.UnusableInput) as caught:
        verify.verify_log(pristine, other)
    assert str(caught.value) == (
        f"the key {ORIGIN}+{other.key_id.hex()} does not belong to this log (its checkpoints"
        f" are signed by {ORIGIN}+{VERIFIER.key_id.hex()})")


def test_a_checkpoint_forged_under_the_logs_key_id_is_tampering(tampered: Path) -> None:
    signed = value(tampered, f"SELECT note FROM checkpoints WHERE tree_size = {SIZE}")
    line = signed.rindex(b"\n\n") + 2
    edit(tampered, f"UPDATE checkpoints SET note = ? WHERE tree_size = {SIZE}",
         flip(signed, line + len("\u2014 ".encode()) + len(ORIGIN) + 10, 1))
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (35, verify.BAD_SIGNATURE)


ANY = settings(max_examples=40, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


@ANY
@given(leaf=st.integers(0, SIZE - 1), offset=st.integers(0, 400), mask=st.integers(1, 255))
def test_any_byte_changed_in_a_record_is_a_modified_record(tampered, pristine, leaf, offset,
                                                           mask) -> None:
    shutil.copy(pristine, tampered)
    record = value(tampered, "SELECT record FROM audit_leaves WHERE leaf_index = ?", leaf)
    edit(tampered, "UPDATE audit_leaves SET record = ? WHERE leaf_index = ?",
         flip(record, offset, mask), leaf)
    report = verify.verify_log(tampered, VERIFIER)
    assert report.first.position == leaf
    assert verify.MODIFIED_RECORD in {p.kind for p in report.problems if p.position == leaf}


@ANY
@given(data=st.data(), offset=st.integers(0, 31), mask=st.integers(1, 255))
def test_any_byte_changed_in_a_tree_node_is_a_modified_node(tampered, pristine, data, offset,
                                                            mask) -> None:
    shutil.copy(pristine, tampered)
    level = data.draw(st.integers(0, SIZE.bit_length() - 1))
    idx = data.draw(st.integers(0, (SIZE >> level) - 1))
    digest = value(tampered, "SELECT hash FROM tree_nodes WHERE id = node(?, ?)", level, idx)
    edit(tampered, "UPDATE tree_nodes SET hash = ? WHERE id = node(?, ?)",
         flip(digest, offset, mask), level, idx)
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (idx << level, verify.MODIFIED_NODE)


@ANY
@given(data=st.data())
def test_a_deleted_tree_node_is_missing(tampered, pristine, data) -> None:
    shutil.copy(pristine, tampered)
    level = data.draw(st.integers(0, SIZE.bit_length() - 1))
    idx = data.draw(st.integers(0, (SIZE >> level) - 1))
    edit(tampered, "DELETE FROM tree_nodes WHERE id = node(?, ?)", level, idx)
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (idx << level, verify.MISSING_NODE)


@ANY
@given(leaf=st.integers(0, SIZE - 1))
def test_a_deleted_record_is_missing(tampered, pristine, leaf) -> None:
    shutil.copy(pristine, tampered)
    edit(tampered, "DELETE FROM audit_leaves WHERE leaf_index = ?", leaf)
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (leaf, verify.MISSING_RECORD)


@ANY
@given(leaf=st.integers(0, SIZE - 1))
def test_a_record_inserted_in_the_middle_is_caught_where_it_went_in(tampered, pristine,
                                                                    leaf) -> None:
    shutil.copy(pristine, tampered)
    edit(tampered, "UPDATE audit_leaves SET leaf_index = -leaf_index - 1000"
         " WHERE leaf_index >= ?", leaf)
    edit(tampered, "UPDATE audit_leaves SET leaf_index = -leaf_index - 999 WHERE leaf_index < 0")
    edit(tampered, "INSERT INTO audit_leaves SELECT ?, record, create_time, actor, action,"
         " outcome, subjects FROM audit_leaves WHERE leaf_index = 0", leaf)
    report = verify.verify_log(tampered, VERIFIER)
    assert report.first.position == leaf
    assert {p.kind for p in report.problems} >= {verify.MODIFIED_RECORD, verify.EXTRA_RECORD}


@ANY
@given(pair=st.lists(st.integers(0, SIZE - 1), min_size=2, max_size=2, unique=True))
def test_two_records_swapped_are_caught_at_the_first(tampered, pristine, pair) -> None:
    shutil.copy(pristine, tampered)
    a, b = sorted(pair)
    edit(tampered, "UPDATE audit_leaves SET leaf_index = -1 WHERE leaf_index = ?", a)
    edit(tampered, "UPDATE audit_leaves SET leaf_index = ? WHERE leaf_index = ?", a, b)
    edit(tampered, "UPDATE audit_leaves SET leaf_index = ? WHERE leaf_index = -1", b)
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (a, verify.MODIFIED_RECORD)


@ANY
@given(pair=st.lists(st.integers(0, SIZE - 1), min_size=2, max_size=2, unique=True))
def test_two_leaf_hashes_swapped_are_caught_at_the_first(tampered, pristine, pair) -> None:
    shutil.copy(pristine, tampered)
    a, b = sorted(pair)
    ha = value(tampered, "SELECT hash FROM tree_nodes WHERE id = node(0, ?)", a)
    hb = value(tampered, "SELECT hash FROM tree_nodes WHERE id = node(0, ?)", b)
    edit(tampered, "UPDATE tree_nodes SET hash = ? WHERE id = node(0, ?)", hb, a)
    edit(tampered, "UPDATE tree_nodes SET hash = ? WHERE id = node(0, ?)", ha, b)
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (a, verify.MODIFIED_NODE)


@ANY
@given(offset=st.integers(0, 300), mask=st.integers(1, 255), which=st.integers(0, 8))
def test_any_byte_changed_in_a_checkpoint_is_caught_at_its_size(tampered, pristine, offset,
                                                                 mask, which) -> None:
    shutil.copy(pristine, tampered)
    size = value(tampered, "SELECT tree_size FROM checkpoints ORDER BY tree_size"
                 " LIMIT 1 OFFSET ?", which)
    signed = value(tampered, "SELECT note FROM checkpoints WHERE tree_size = ?", size)
    edit(tampered, "UPDATE checkpoints SET note = ? WHERE tree_size = ?",
         flip(signed, offset, mask), size)
    problem = first_problem(tampered)
    assert problem.position <= size
    assert problem.kind in {verify.BAD_SIGNATURE, verify.BAD_CHECKPOINT}


def test_extra_record_and_extra_node(tampered: Path) -> None:
    edit(tampered, "INSERT INTO audit_leaves SELECT 40, record, create_time, actor, action,"
         " outcome, subjects FROM audit_leaves WHERE leaf_index = 3")
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (40, verify.EXTRA_RECORD)
    edit(tampered, "DELETE FROM audit_leaves WHERE leaf_index = 40")
    edit(tampered, "INSERT INTO tree_nodes VALUES (node(1, 18), zeroblob(32))")
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (SIZE, verify.EXTRA_NODE)


def test_a_deleted_latest_checkpoint_leaves_records_uncovered(tampered: Path) -> None:
    edit(tampered, f"DELETE FROM checkpoints WHERE tree_size = {SIZE}")
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (35, verify.EXTRA_RECORD)


def test_edited_subjects_are_an_index_mismatch(tampered: Path) -> None:
    edit(tampered, "UPDATE audit_leaves SET subjects = replace(subjects, 'agencies/a1',"
         " 'agencies/zz') WHERE leaf_index = 7")
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (7, verify.INDEX_MISMATCH)
    edit(tampered, "UPDATE audit_leaves SET subjects = replace(subjects, 'agencies/zz',"
         " 'agencies/a1') WHERE leaf_index = 7")
    edit(tampered, "UPDATE audit_leaves SET actor = 'urn:govshare:agency:b' WHERE leaf_index = 9")
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (9, verify.INDEX_MISMATCH)


@ANY
@given(leaf=st.integers(0, SIZE - 1))
def test_a_subject_index_row_taken_away_or_added_is_an_index_mismatch(tampered, pristine,
                                                                      leaf) -> None:
    shutil.copy(pristine, tampered)
    edit(tampered, "DELETE FROM audit_subject_index WHERE leaf_index = ? AND subject ="
         " (SELECT max(subject) FROM audit_subject_index WHERE leaf_index = ?)", leaf, leaf)
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (leaf, verify.INDEX_MISMATCH)
    shutil.copy(pristine, tampered)
    edit(tampered, "INSERT INTO audit_subject_index VALUES ('agencies/zz', ?)", leaf)
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (leaf, verify.INDEX_MISMATCH)


def test_a_subject_index_claiming_leaves_it_lacks_is_an_index_mismatch(tampered) -> None:
    edit(tampered, "DELETE FROM audit_subject_index WHERE leaf_index >= 30")
    problem = first_problem(tampered)
    assert (problem.position, problem.kind) == (30, verify.INDEX_MISMATCH)
    edit(tampered, "UPDATE audit_subject_index_state SET upto = 30")
    assert verify.verify_log(tampered, VERIFIER).ok  # a lagging index only costs a scan


def truncate(path: Path, size: int) -> None:
    """Cut the log back to `size` leaves consistently, as someone editing the database could."""
    edit(path, "DELETE FROM audit_leaves WHERE leaf_index >= ?", size)
    edit(path, "DELETE FROM checkpoints WHERE tree_size > ?", size)
    edit(path, "DELETE FROM tree_nodes WHERE id >= node(0, ?)", size)
    edit(path, "DELETE FROM audit_subject_index WHERE leaf_index >= ?", size)
    edit(path, "UPDATE audit_subject_index_state SET upto = min(upto, ?)", size)


def test_truncation_is_caught_only_against_a_saved_checkpoint(pristine, tampered) -> None:
    saved = latest_note(pristine)
    truncate(tampered, 20)
    assert verify.verify_log(tampered, VERIFIER).ok
    problem = first_problem(tampered, against=saved)
    # A signed root alone cannot tell a truncation from a shorter fork, nor say where.
    assert (problem.position, problem.kind) == (0, verify.TRUNCATION_OR_FORK)
    assert problem.detail == (
        f"the log holds 20 leaves but a checkpoint for {SIZE} was saved earlier: it was"
        " truncated or forked, and a signed root cannot say where (--against an earlier copy"
        " of the database names the first leaf that differs)")


@pytest.fixture(scope="module")
def stepwise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log with a checkpoint after every leaf, so a history can be rewritten from any one."""
    return build_log(tmp_path_factory.mktemp("log") / "stepwise.db", batch=1)


@pytest.fixture
def forked(stepwise: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "forked.db"
    shutil.copy(stepwise, copy)
    return copy


def fork(path: Path, leaf: int, size: int = SIZE + 3) -> None:
    """Rewrite the history of `path` from `leaf` on as a gateway holding the key could: new
    records, tree and re-signed checkpoints, so the log verifies by itself. `leaf` must be
    the size of a stored checkpoint."""
    truncate(path, leaf)
    db = Database(path)
    log = AuditLog(db, SIGNER, ORIGIN, checkpoint_file=path.with_suffix(".forked"))
    work = UnitOfWork(log.db, log)
    log.open(work, checkpoint_from_database=True)
    work.append([Event(actor="urn:govshare:agency:z", action="catalog.publish",
                      resources=(f"agencies/a0/datasets/d{i}",)) for i in range(leaf, size)])
    work.close()
    log.close()
    db.close()


def test_a_rewritten_history_is_a_fork_against_a_saved_checkpoint(pristine, tmp_path) -> None:
    saved = latest_note(pristine)
    other = build_log(tmp_path / "other.db", size=SIZE + 3, actor="urn:govshare:agency:z")
    assert verify.verify_log(other, VERIFIER).ok
    problem = first_problem(other, against=saved)
    assert (problem.position, problem.kind) == (0, verify.FORK)
    assert f"somewhere in leaves 0 to {SIZE - 1}" in problem.detail
    assert verify.verify_log(pristine, VERIFIER, against=saved).ok


@pytest.mark.parametrize("leaf", [0, 1, 12, 20, SIZE - 1])
def test_a_fork_against_an_earlier_copy_names_the_first_leaf_that_differs(stepwise, forked,
                                                                          leaf) -> None:
    fork(forked, leaf)
    assert verify.verify_log(forked, VERIFIER).ok
    problem = first_problem(forked, against=stepwise)
    assert (problem.position, problem.kind) == (leaf, verify.FORK)
    assert problem.detail.startswith(f"leaf {leaf} differs from the earlier copy's, whose"
                                     f" checkpoint of {SIZE} leaves was signed")
    assert verify.verify_log(stepwise, VERIFIER, against=stepwise).ok


def test_a_truncation_against_an_earlier_copy_names_the_first_leaf_gone_or_changed(
        stepwise, forked) -> None:
    truncate(forked, 20)
    problem = first_problem(forked, against=stepwise)
    assert (problem.position, problem.kind) == (20, verify.TRUNCATION)
    assert problem.detail.endswith(f"leaves 20 to {SIZE - 1} are gone")
    fork(forked, 13, size=20)  # shorter and rewritten: the rewrite is what comes first
    problem = first_problem(forked, against=stepwise)
    assert (problem.position, problem.kind) == (13, verify.FORK)


def test_an_earlier_copy_that_is_no_log_is_unusable(pristine, tampered, tmp_path) -> None:
    edit(tampered, "UPDATE tree_nodes SET hash = zeroblob(32) WHERE id = node(5, 0)")
    junk = tmp_path / "junk.db"
    junk.write_bytes(verify.SQLITE_HEADER + bytes(200))
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    for copy, message in ((tampered, "does not lead to its own latest checkpoint"),
                          (junk, "cannot be read as a database of the log"),
                          (empty, "cannot be read as a database of the log")):
        with pytest.raises(verify.UnusableInput, match=message):
            verify.verify_log(pristine, VERIFIER, against=copy)


def test_a_saved_checkpoint_from_another_key_is_refused(pristine) -> None:
    stranger = note.NoteSigner(ORIGIN, SigningKey.from_seed(bytes(32)))
    forged = note.sign_note(note.Checkpoint(ORIGIN, 1, bytes(32)).to_text(), [stranger])
    with pytest.raises(verify.UnusableInput) as caught:
        verify.verify_log(pristine, VERIFIER, against=forged)
    assert str(caught.value) == (
        f"the saved checkpoint does not belong to this log: it is signed by"
        f" {ORIGIN}+{stranger.key_id.hex()}, not by {ORIGIN}+{VERIFIER.key_id.hex()}")


@pytest.mark.parametrize("saved", [b"", b"not a checkpoint\n", b"\xff\xfe", b"a\n\n\n"])
def test_a_malformed_saved_checkpoint_is_unusable(pristine, saved) -> None:
    with pytest.raises(verify.UnusableInput) as caught:
        verify.verify_log(pristine, VERIFIER, against=saved)
    assert str(caught.value) == (
        "the saved checkpoint is none of the files it can be: a signed checkpoint note (as audit"
        " verify --save-checkpoint writes it), the gateway's checkpoint file ([audit]"
        " checkpoint_file) or an earlier copy of the database")


def test_verify_reads_one_snapshot_while_the_log_grows(tmp_path: Path):
    db = Database(tmp_path / "audit.db")
    log = AuditLog(db, SIGNER, ORIGIN, checkpoint_file=tmp_path / "audit.checkpoint")
    work = UnitOfWork(log.db, log)
    log.open(work)
    stop = threading.Event()

    def write() -> None:
        for i in range(20_000):  # bounded: stops at the end of the test or after this many
            if stop.is_set():
                return
            work.append([event(i)])

    writer = threading.Thread(target=write)
    writer.start()
    try:
        reports = [verify.verify_log(db.path, SIGNER.verifier()) for _ in range(15)]
    finally:
        stop.set()
        writer.join()
        work.close()
        log.close()
        db.close()
    assert [str(r.first) for r in reports if not r.ok] == []
    assert reports[-1].tree_size > reports[0].tree_size  # the log did grow meanwhile
