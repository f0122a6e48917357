"""Protobuf's wire format, read only as far as passing a message on unchanged needs.

A gateway relaying another member's FetchDataset stream passes each chunk message on as the
bytes it received, instead of parsing it and serialising it again (two copies of a 1 MiB chunk
and a Python object per message, on a path that is all copies). It may do so only when the bytes
are what it hashed: a message made of exactly one length-delimited field, which every protobuf
parser reads as that field holding those bytes and nothing else. Any other shape (several
fields, one repeated, unknown ones) is parsed in full, as any message is.
"""

from __future__ import annotations

LENGTH_DELIMITED = 2
"""The wire type of bytes, strings and messages."""
_MAX_VARINT_BYTES = 10


def only_field(message: bytes) -> tuple[int, memoryview] | None:
    """The field number and the content (a view, not a copy) of `message`'s one field, when the
    message is exactly one length-delimited field; None otherwise."""
    view = memoryview(message)
    tag, at = _varint(view, 0)
    if tag is None or tag & 7 != LENGTH_DELIMITED:
        return None
    length, at = _varint(view, at)
    if length is None or at + length != len(view):
        return None
    return tag >> 3, view[at:]


def _varint(view: memoryview, at: int) -> tuple[int | None, int]:
    """The varint at `at` and the position after it; None when it is cut short or too long."""
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if at + index >= len(view):
            return None, at
        byte = view[at + index]
        value |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            return value, at + index + 1
    return None, at
