"""Resource ids: UUIDv7 (RFC 9562) as 32 hex digits.

The first 48 bits are the creation time in Unix milliseconds, so new ids sort after older ones
and a table's unique index on names grows at its end instead of touching a random page on every
insert; the other 74 bits are random, so ids stay unguessable.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_RANDOM_BYTES = 10
"""Bytes of randomness drawn per id (74 bits used)."""
_POOL_BYTES = 4096


class _RandomPool:
    """Bytes from the operating system's CSPRNG, drawn a page at a time: one getrandom call
    per 409 ids instead of one per id. On a busy gateway every system call is also a handover
    of the interpreter lock, which costs more than the call itself (about 20 us each under
    load: two ids per granted access request)."""

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
            os.register_at_fork(after_in_child=self._reset)  # a child must not repeat our bytes

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._bytes = b""
        self._next = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._next + count > len(self._bytes):
                self._bytes, self._next = os.urandom(_POOL_BYTES), 0
            start, self._next = self._next, self._next + count
            return self._bytes[start:self._next]


_pool = _RandomPool()


def new_id() -> str:
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(_pool.take(_RANDOM_BYTES)) >> (8 * _RANDOM_BYTES - 74)
    value = (millis << 80) | (0x7 << 76) | ((random >> 62) << 64) | (0b10 << 62) | (
        random & ((1 << 62) - 1))
    return uuid.UUID(int=value).hex
