"""Resource ids: UUIDv7 (RFC 9562) as 32 hex digits.

The first 48 bits are the creation time in Unix milliseconds, so new ids sort after older ones
and a table's unique index on names grows at its end instead of touching a random page on every
insert; the other 74 bits are random, so ids stay unguessable.
"""

from __future__ import annotations

import secrets
import time
import uuid


def new_id() -> str:
    millis = time.time_ns() // 1_000_000
    random = secrets.randbits(74)
    value = (millis << 80) | (0x7 << 76) | ((random >> 62) << 64) | (0b10 << 62) | (
        random & ((1 << 62) - 1))
    return uuid.UUID(int=value).hex
