"""Rows read on every call and changed rarely, kept in memory until a change commits."""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class ReadCache:
    """Up to `capacity` rows by key, read through `query` on first use; the least recently
    used row goes first (a row that is not found is looked up again each time).

    Whatever changes the rows must call `invalidate` once its change is committed (between
    the commit and that call, lookups may still see the old row, as a read just before the
    commit would have). A generation counter keeps a lookup that raced with a change from
    storing the row it read before that change.
    """

    def __init__(self, db: Any, capacity: int):
        self._db = db
        self._capacity = capacity
        self._generation = 0
        self._rows: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def invalidate(self, key: tuple[str, str] | None = None) -> None:
        """Forget the row at `key` (every row when None). Lookups in flight store nothing."""
        with self._lock:
            self._generation += 1
            if key is None:
                self._rows.clear()
            else:
                self._rows.pop(key, None)

    def get(self, key: tuple[str, str], query: Callable[[sqlite3.Connection, str], Any]) -> Any:
        """The row `query(reader, key[-1])` returns, from memory when it was read before."""
        with self._lock:
            if key in self._rows:
                self._rows.move_to_end(key)
                return self._rows[key]
            generation = self._generation
        row = query(self._db.reader(), key[-1])
        with self._lock:
            # Misses are not kept: callers choose the keys, and a name that does not exist
            # should not take the place of one that does.
            if row is not None and generation == self._generation:
                self._rows[key] = row
                if len(self._rows) > self._capacity:
                    self._rows.popitem(last=False)
        return row
