"""`govshare audit verify --against` names the first position that is really bad: a record
altered after an earlier copy was taken is reported where it is (not as a fork at 0), and a
shorter log that differs from a saved checkpoint is not called a truncation of its tail."""

from __future__ import annotations

import sqlite3

from tests.support.commands import verify


def test_a_record_altered_after_a_clean_copy_is_named_where_it_is(stopped, tmp_path):
    stopped.run(*["test.event"] * 8)
    copy = stopped.copy(tmp_path / "copy.db")
    altered = stopped.checkpoints()[-1][0] - 2
    conn = sqlite3.connect(stopped.database)
    conn.execute("UPDATE audit_leaves SET record = CAST(REPLACE(CAST(record AS TEXT),"
                 " 'test.event', 'test.EVENT') AS BLOB) WHERE leaf_index = ?", (altered,))
    conn.commit()
    conn.close()
    plain = verify(stopped)
    against = verify(stopped, "--against", str(copy))
    for done in (plain, against):
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr.lstrip().startswith(
            f"FAILED: modified record at position {altered}: record {altered} does not hash to"
            " the leaf the log committed to\n"), done.stderr
        assert done.stderr.endswith(f"; first bad position {altered}\n")


def test_a_shorter_fork_against_a_saved_checkpoint_is_not_called_a_truncation(stopped,
                                                                              tmp_path):
    fork_point = stopped.copy(tmp_path / "fork-point.db")
    saved_then = stopped.checkpoint_file.read_bytes()
    stopped.run(*["test.one_history"] * 5)
    size, _, signed = stopped.checkpoints()[-1]
    published = tmp_path / "published.checkpoint"
    published.write_bytes(bytes(signed))
    stopped.put_back(fork_point)  # another history, three leaves long, from the same point
    stopped.checkpoint_file.write_bytes(saved_then)
    stopped.run(*["test.another_history"] * 3)
    held = stopped.checkpoints()[-1][0]
    done = verify(stopped, "--against", str(published))
    assert done.returncode == 1
    assert done.stderr.lstrip() == (
        f"FAILED: truncation or fork at position 0: the log holds {held} leaves but a"
        f" checkpoint for {size} was saved earlier: it was truncated or forked, and a signed"
        " root cannot say where (--against an earlier copy of the database names the first"
        " leaf that differs)\n1 problem(s); first bad position 0\n")
