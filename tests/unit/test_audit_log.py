"""The write path under stress (many threads, a killed writer, a modified record at start-up)
and the subject index the committer keeps."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import verify
from gateway.audit.log import INDEX_STEP, AuditLog, LogIntegrityError
from gateway.audit.saved import CheckpointFile
from gateway.storage import Database
from gateway.storage import audit as sql
from gateway.unit_of_work import UnitOfWork
from govshare.signing import SigningKey
from govshare.transparency import note, record
from govshare.transparency.record import Event

ORIGIN = "test.local/audit"
SEED = bytes(range(32))
SIGNER = note.NoteSigner(ORIGIN, SigningKey.from_seed(SEED))


def open_log(path: Path) -> tuple[AuditLog, UnitOfWork]:
    log = AuditLog(Database(path), SIGNER, ORIGIN,
                   checkpoint_file=path.with_suffix(".checkpoint"))
    work = UnitOfWork(log.db, log)
    log.open(work)
    return log, work


def test_the_checkpoint_is_saved_before_the_caller_is_answered(tmp_path: Path) -> None:
    log, work = open_log(tmp_path / "audit.db")
    try:
        committed = work.append([Event(actor="urn:govshare:test", action="test.saved")])
        signed, first = CheckpointFile(tmp_path / "audit.checkpoint").read()
        saved = note.Checkpoint.parse(note.open_note(signed, [SIGNER.verifier()]))
        assert note.Checkpoint.parse(note.open_note(first, [SIGNER.verifier()])).size == 0
        assert saved.size == committed.tree_size == committed.leaf_indices[0] + 1
        assert bytes(log.checkpoint().note) == signed  # what GetCheckpoint shows
    finally:
        work.close()
        log.close()
        log.db.close()


def test_concurrent_appends_lose_nothing_and_verify(tmp_path: Path) -> None:
    log, work = open_log(tmp_path / "audit.db")
    threads, per_thread = 32, 40

    def produce(worker: int) -> list[int]:
        indices = []
        for n in range(per_thread):
            event = Event(actor=f"urn:govshare:agency:w{worker}", action="test.append",
                          resources=(f"agencies/w{worker}/datasets/d{n}",))
            indices.extend(work.append([event]).leaf_indices)
        return indices

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(produce, range(threads)))
    work.close()
    log.close()
    indices = sorted(i for found in results for i in found)
    assert indices == list(range(threads * per_thread))
    report = verify.verify_log(log.db, SIGNER.verifier())
    assert report.ok, report.problems[:3]
    assert report.tree_size == threads * per_thread
    log.db.close()


APPENDER = textwrap.dedent("""
    import sys
    from pathlib import Path

    from govshare.transparency import note
    from gateway.audit.log import AuditLog
    from gateway.unit_of_work import UnitOfWork
    from govshare.transparency.record import Event
    from govshare.signing import SigningKey
    from gateway.storage import Database

    signer = note.NoteSigner(sys.argv[2], SigningKey.from_seed(bytes(range(32))))
    log = AuditLog(Database(sys.argv[1]), signer, sys.argv[2],
                   checkpoint_file=Path(sys.argv[1]).with_suffix(".checkpoint"))
    work = UnitOfWork(log.db, log)
    log.open(work)
    n = 0
    while True:
        work.append([Event(actor="urn:govshare:agency:a", action="test.loop",
                          resources=(f"agencies/a/datasets/d{n}",))] * (1 + n % 3))
        n += 1
        if n == 20:
            print("running", flush=True)
""")


@pytest.mark.slow
def test_a_killed_writer_leaves_a_log_that_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    for _round in range(3):
        child = subprocess.Popen([sys.executable, "-c", APPENDER, str(path), ORIGIN],
                                 stdout=subprocess.PIPE, text=True,
                                 cwd=Path(__file__).resolve().parents[2])
        assert child.stdout.readline().strip() == "running"
        time.sleep(0.2)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        report = verify.verify_log(path, SIGNER.verifier())
        assert report.ok, report.problems[:3]
        assert report.tree_size >= 20
    log, work = open_log(path)  # the start-up check accepts it too
    work.close()
    log.close()
    log.db.close()


def test_start_up_refuses_a_modified_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    log, work = open_log(path)
    work.append([Event(actor="urn:govshare:agency:a", action="test.one")] * 5)
    work.close()
    log.close()
    log.db.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE audit_leaves SET record = CAST(replace(CAST(record AS TEXT),"
                     " 'test.one', 'test.two') AS BLOB) WHERE leaf_index = 3")
    conn.close()
    db = Database(path)
    with pytest.raises(LogIntegrityError, match="differs from the last signed checkpoint"):
        log = AuditLog(db, SIGNER, ORIGIN, checkpoint_file=path.with_suffix(".checkpoint"))
        log.open(UnitOfWork(db, log))
    db.close()


def test_a_change_failing_after_writing_is_undone_alone(tmp_path: Path) -> None:
    """Changes run without savepoints; one that fails after writing makes its batch run again
    with savepoints, so its writes vanish and the others' stay."""
    from threading import Barrier, Thread

    from govshare import errors

    log, work = open_log(tmp_path / "audit.db")
    log.db.writer.execute("CREATE TABLE notes (body TEXT NOT NULL)")
    gate = Barrier(2)

    def held(tx):
        gate.wait(5)
        return None, []

    hold = Thread(target=work.commit, args=(held,))
    hold.start()  # keeps the committer busy while the next changes queue into one batch

    def writes(body: str, fail: bool):
        def change(tx):
            tx.conn.execute("INSERT INTO notes (body) VALUES (?)", (body,))
            if fail:
                raise errors.FailedPrecondition("refused after writing", reason="LATE_REFUSAL")
            return body, [Event(actor="urn:govshare:agency:a", action="test.note",
                                resources=(f"notes/{body}",))]
        return change

    refusal = Event(actor="urn:govshare:agency:a", action="test.note", outcome="REFUSED")
    results: dict[str, object] = {}

    def run(body: str, fail: bool) -> None:
        try:
            results[body] = work.commit(writes(body, fail), lambda exc: refusal).value
        except errors.GatewayError as exc:
            results[body] = exc

    workers = [Thread(target=run, args=(body, body == "bad")) for body in ("a", "bad", "b")]
    for worker in workers:
        worker.start()
    time.sleep(0.2)
    gate.wait(5)
    for worker in [*workers, hold]:
        worker.join(10)
    assert results["a"] == "a" and results["b"] == "b"
    assert isinstance(results["bad"], errors.FailedPrecondition)
    assert results["bad"].audited
    notes = sorted(r[0] for r in log.db.writer.execute("SELECT body FROM notes"))
    assert notes == ["a", "b"]
    work.close()
    log.close()
    report = verify.verify_log(log.db, SIGNER.verifier())
    assert report.ok and report.tree_size == 3  # a, b and the refusal
    log.db.close()


def test_every_caller_of_a_batch_wakes_in_turn_past_refused_ones(tmp_path: Path) -> None:
    """A batch's callers wake one another in queue order: refused changes in the middle and at
    either end must not leave anyone after them waiting."""
    from threading import Barrier, Thread
    from threading import Event as Event_

    from govshare import errors

    log, work = open_log(tmp_path / "audit.db")
    inside, gate = Event_(), Barrier(2)

    def held(tx):
        inside.set()
        gate.wait(10)
        return None, []

    hold = Thread(target=work.commit, args=(held,))
    hold.start()
    assert inside.wait(10)  # the committer waits inside this change while the batch queues
    refusal = Event(actor="urn:govshare:agency:a", action="test.turn", outcome="REFUSED")
    refused = {0, 3, 4, 9}
    results: dict[int, object] = {}

    def change(n: int):
        def run(tx):
            if n in refused:
                raise errors.FailedPrecondition(f"change {n} refused", reason="TEST")
            return n, [Event(actor="urn:govshare:agency:a", action="test.turn")]
        return run

    def caller(n: int) -> None:
        try:
            results[n] = work.commit(change(n), lambda exc: refusal).value
        except errors.FailedPrecondition as exc:
            results[n] = exc

    workers = []
    for n in range(10):  # queued in this order, one batch
        workers.append(Thread(target=caller, args=(n,)))
        workers[-1].start()
        deadline = time.monotonic() + 10
        while work._queue.qsize() < n + 1 and time.monotonic() < deadline:
            time.sleep(0.001)
    gate.wait(10)
    for worker in [hold, *workers]:
        worker.join(10)
    assert sorted(results) == list(range(10))
    assert all(isinstance(results[n], errors.FailedPrecondition) == (n in refused)
               for n in range(10))
    assert [results[n] for n in range(10) if n not in refused] == [1, 2, 5, 6, 7, 8]
    work.close()
    log.close()
    checkpoints = sql.checkpoints(log.db.writer)
    assert [c.tree_size for c in checkpoints] == [0, 10]  # the held change added no leaf
    log.db.close()


text_tuples = st.lists(st.text(), max_size=4).map(tuple)


@settings(max_examples=300, deadline=None)
@given(actor=st.text(), action=st.text(), resources=text_tuples, outcome=st.text(),
       reason=st.text(), digest=st.text(), envelopes=text_tuples, agencies=text_tuples,
       when=st.text(), via=st.text())
def test_records_are_the_bytes_json_dumps_gives(actor, action, resources, outcome, reason,
                                                 digest, envelopes, agencies, when,
                                                 via) -> None:
    """The record format is compact JSON with sorted keys; the encoder writes it out by hand
    and must never drift from json.dumps (any text but lone surrogates, which no UTF-8 record
    holds: quotes, backslashes, control characters, non-ASCII). A record without `via` is the
    version 1 record of earlier releases, byte for byte."""
    event = Event(actor=actor, action=action, resources=resources, outcome=outcome,
                  reason=reason, request_digest=digest, envelope_ids=envelopes,
                  agencies=agencies, time=when, via=via)
    body = {"v": record.FORMAT_VERSION, "time": when, "actor": actor, "action": action,
            "resources": list(resources), "outcome": outcome, "reason": reason,
            "request_digest": digest, "envelopes": list(envelopes), "subjects": event.subjects}
    if via:
        body.update(v=record.VIA_FORMAT_VERSION, via=via)
    assert event.record == json.dumps(body, sort_keys=True, separators=(",", ":"),
                                      ensure_ascii=False).encode()
    assert record.decode(event.record) == body


def test_only_names_of_valid_ids_are_subjects() -> None:
    # Subjects are stored newline-separated and matched as "\nname\n"; a refused request may
    # name anything, of any length.
    event = Event(actor="urn:x", action="catalog.get",
                  resources=("agencies/sz-market\nagencies", "agencies/zj-stats\0",
                             "agencies/gd-health/datasets/beds", "agencies/" + "x" * 70,
                             "agencies/Upper/datasets/beds", "agencies/hn-water/datasets/a b"))
    assert event.subjects == ["agencies/gd-health", "agencies/gd-health/datasets/beds",
                              "agencies/hn-water"]


def test_the_committer_indexes_subjects_in_whole_steps_while_idle(tmp_path: Path) -> None:
    log, work = open_log(tmp_path / "audit.db")
    size = 2 * INDEX_STEP + 10
    for begin in range(0, size, 10):
        work.append([Event(actor="urn:govshare:agency:a", action="test.append",
                          resources=(f"agencies/a{n % 4}/datasets/d{n}",))
                    for n in range(begin, begin + 10)])
    reader = log.db.reader()
    deadline = time.monotonic() + 30
    while sql.subjects_indexed_upto(reader) < 2 * INDEX_STEP and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # nothing more: the last 10 leaves wait for a whole step
    assert sql.subjects_indexed_upto(reader) == 2 * INDEX_STEP
    assert reader.execute("SELECT count(*) FROM audit_subject_index"
                          " WHERE subject = 'agencies/a1'").fetchone()[0] == INDEX_STEP // 2
    work.close()
    log.close()
    assert verify.verify_log(log.db, SIGNER.verifier()).ok
    log.db.close()


SUBJECTS = [f"agencies/a{n}" for n in range(4)] + [f"agencies/a{n}/datasets/d{n}" for n in range(4)]


@pytest.fixture(scope="module")
def mixed_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """A closed log of 120 events, each concerning some of SUBJECTS, and its decoded records."""
    import random

    rng = random.Random(7)
    path = tmp_path_factory.mktemp("mixed") / "audit.db"
    log, work = open_log(path)
    for n in range(120):
        resources = tuple(rng.sample(SUBJECTS, rng.randint(0, 3)))
        work.append([Event(actor=f"urn:govshare:agency:a{n % 3}", action=f"test.{n % 2}",
                          resources=resources)])
    work.close()
    log.close()
    records = [record.decode(data) for _, data in sql.iter_records(log.db.reader())]
    log.db.close()
    return path, records


@settings(max_examples=60, deadline=None)
@given(upto=st.integers(0, 120), page=st.integers(1, 50),
       wanted=st.lists(st.sampled_from(SUBJECTS), max_size=2, unique=True),
       any_of=st.lists(st.sampled_from(SUBJECTS[:4]), max_size=2, unique=True),
       action=st.sampled_from(["", "test.0"]))
def test_listings_by_subject_match_a_scan_however_far_the_index_got(
        mixed_log, upto, page, wanted, any_of, action) -> None:
    path, records = mixed_log
    conn = sqlite3.connect(path, isolation_level=None)
    with conn:
        conn.execute("DELETE FROM audit_subject_index")
        conn.execute("UPDATE audit_subject_index_state SET upto = 0")
        sql.index_subjects(conn, 0, upto)
    listed, after = [], -1
    while True:
        found = sql.list_leaves(conn, after=after, limit=page, subjects=wanted,
                                any_subject=any_of, action=action)
        listed += [row.leaf_index for row in found]
        if len(found) < page:
            break
        after = found[-1].leaf_index
    conn.close()
    expected = [n for n, body in enumerate(records)
                if all(s in body["subjects"] for s in wanted)
                and (not any_of or any(s in body["subjects"] for s in any_of))
                and (not action or body["action"] == action)]
    assert listed == expected


def test_a_failing_subject_index_stops_indexing_but_not_commits(tmp_path: Path,
                                                                monkeypatch) -> None:
    def broken(conn, upto, limit):
        conn.execute("INSERT INTO audit_subject_index VALUES ('agencies/x', 0)")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sql, "index_subjects", broken)
    log, work = open_log(tmp_path / "audit.db")
    events = [Event(actor="urn:govshare:agency:a", action="test.append",
                    resources=(f"agencies/a{n % 2}",)) for n in range(INDEX_STEP + 5)]
    for event in events:
        work.append([event])
    deadline = time.monotonic() + 30
    while log._indexed is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log._indexed is None  # it tried once, failed, and stopped
    assert work.append([events[0]]).leaf_indices == [INDEX_STEP + 5]
    reader = log.db.reader()
    assert reader.execute("SELECT count(*) FROM audit_subject_index").fetchone()[0] == 0
    listed = sql.list_leaves(reader, after=-1, limit=1000, any_subject=["agencies/a1"])
    assert [row.leaf_index for row in listed] == list(range(1, INDEX_STEP + 5, 2))
    work.close()
    log.close()
    assert verify.verify_log(log.db, SIGNER.verifier()).ok
    log.db.close()
