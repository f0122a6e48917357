"""The write path under stress: many threads, a killed writer, a modified record at start-up."""

from __future__ import annotations

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

from gateway.audit import note, verify
from gateway.audit.log import AuditLog, LogIntegrityError
from gateway.audit.record import Event
from gateway.signing import SigningKey
from gateway.storage import Database

ORIGIN = "test.local/audit"
SEED = bytes(range(32))
SIGNER = note.NoteSigner(ORIGIN, SigningKey.from_seed(SEED))


def open_log(path: Path) -> AuditLog:
    log = AuditLog(Database(path), SIGNER, ORIGIN)
    log.open()
    return log


def test_concurrent_appends_lose_nothing_and_verify(tmp_path: Path) -> None:
    log = open_log(tmp_path / "audit.db")
    threads, per_thread = 32, 40

    def produce(worker: int) -> list[int]:
        indices = []
        for n in range(per_thread):
            event = Event(actor=f"urn:govshare:agency:w{worker}", action="test.append",
                          resources=(f"agencies/w{worker}/datasets/d{n}",))
            indices.extend(log.append([event]).leaf_indices)
        return indices

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(produce, range(threads)))
    log.close()
    indices = sorted(i for found in results for i in found)
    assert indices == list(range(threads * per_thread))
    report = verify.verify_log(log.db, SIGNER.verifier())
    assert report.ok, report.problems[:3]
    assert report.tree_size == threads * per_thread
    log.db.close()


APPENDER = textwrap.dedent("""
    import sys
    from gateway.audit import note
    from gateway.audit.log import AuditLog
    from gateway.audit.record import Event
    from gateway.signing import SigningKey
    from gateway.storage import Database

    signer = note.NoteSigner(sys.argv[2], SigningKey.from_seed(bytes(range(32))))
    log = AuditLog(Database(sys.argv[1]), signer, sys.argv[2])
    log.open()
    n = 0
    while True:
        log.append([Event(actor="urn:govshare:agency:a", action="test.loop",
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
    log = open_log(path)  # the start-up check accepts it too
    log.close()
    log.db.close()


def test_start_up_refuses_a_modified_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    log = open_log(path)
    log.append([Event(actor="urn:govshare:agency:a", action="test.one")] * 5)
    log.close()
    log.db.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE audit_leaves SET record = CAST(replace(CAST(record AS TEXT),"
                     " 'test.one', 'test.two') AS BLOB) WHERE leaf_index = 3")
    conn.close()
    db = Database(path)
    with pytest.raises(LogIntegrityError, match="differs from the last signed checkpoint"):
        AuditLog(db, SIGNER, ORIGIN).open()
    db.close()
