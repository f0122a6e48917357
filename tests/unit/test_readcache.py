"""ReadCache: rows stay until their change commits; a lookup racing a change stores nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.readcache import ReadCache


class Storage:
    """A real SQLite file with one table of values, as the cache's `db`."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")
        self.reads = 0

    def reader(self) -> sqlite3.Connection:
        return self.conn

    def query(self, conn: sqlite3.Connection, key: str) -> str | None:
        self.reads += 1
        row = conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))


def test_rows_stay_until_their_own_change(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "kv.db")
    storage.put("a", "1")
    storage.put("b", "1")
    cache = ReadCache(storage, capacity=10)
    assert [cache.get(("k", key), storage.query) for key in "ab"] == ["1", "1"]
    storage.put("a", "2")
    storage.put("b", "2")
    cache.invalidate(("k", "a"))
    assert [cache.get(("k", key), storage.query) for key in "ab"] == ["2", "1"]
    cache.invalidate()
    assert cache.get(("k", "b"), storage.query) == "2"
    assert storage.reads == 4


def test_a_lookup_that_raced_a_change_is_not_kept(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "kv.db")
    storage.put("a", "old")
    cache = ReadCache(storage, capacity=10)

    def read_then_change(conn: sqlite3.Connection, key: str) -> str | None:
        value = storage.query(conn, key)  # read before the change commits...
        storage.put("a", "new")
        cache.invalidate(("k", "a"))  # ...which invalidates before the read is stored
        return value

    assert cache.get(("k", "a"), read_then_change) == "old"
    assert cache.get(("k", "a"), storage.query) == "new"


def test_a_row_not_found_is_looked_up_again(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "kv.db")
    cache = ReadCache(storage, capacity=10)
    assert cache.get(("k", "later"), storage.query) is None
    storage.put("later", "1")
    assert cache.get(("k", "later"), storage.query) == "1"


def test_the_least_recently_used_row_goes_first(tmp_path: Path) -> None:
    # Bounded: names keep arriving (every newly published dataset is read).
    storage = Storage(tmp_path / "kv.db")
    for key in "abc":
        storage.put(key, key)
    cache = ReadCache(storage, capacity=2)
    cache.get(("k", "a"), storage.query)
    cache.get(("k", "b"), storage.query)
    cache.get(("k", "a"), storage.query)  # a is now the most recent
    cache.get(("k", "c"), storage.query)  # evicts b
    reads = storage.reads
    cache.get(("k", "a"), storage.query)
    cache.get(("k", "c"), storage.query)
    assert storage.reads == reads
    cache.get(("k", "b"), storage.query)
    assert storage.reads == reads + 1
