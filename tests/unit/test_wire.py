"""The wire format as far as a relay passes a chunk on unparsed (gateway/wire.py): a message
is taken as one field only when every protobuf parser reads it so."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from gateway import wire
from gateway.v1 import envelope_pb2, exchange_pb2

Response = exchange_pb2.FetchDatasetResponse
CHUNK = Response.CHUNK_FIELD_NUMBER
CHUNK_TAG = bytes([CHUNK << 3 | wire.LENGTH_DELIMITED])


@pytest.mark.parametrize("chunk", [b"", b"x", bytes(range(256)) * 600])
def test_a_chunk_message_is_its_one_field(chunk: bytes) -> None:
    data = Response(chunk=chunk).SerializeToString()
    field, content = wire.only_field(data)
    assert (field, bytes(content)) == (CHUNK, chunk)
    assert content.obj is data  # a view of the bytes received, not a copy


def test_the_other_parts_are_their_one_field() -> None:
    start = Response(start=exchange_pb2.FetchStart(exchange="e", offset=3))
    receipt = Response(receipt=envelope_pb2.Envelope(payload=b"p"))
    assert wire.only_field(start.SerializeToString())[0] == Response.START_FIELD_NUMBER
    assert wire.only_field(receipt.SerializeToString())[0] == Response.RECEIPT_FIELD_NUMBER


@pytest.mark.parametrize(("data", "why"), [
    (CHUNK_TAG + b"\x01a" + CHUNK_TAG + b"\x01b", "the same field twice: parsers keep the last"),
    (CHUNK_TAG + b"\x05abc", "a length running past the end"),
    (CHUNK_TAG + b"\x01abc", "bytes after the field"),
    (CHUNK_TAG + b"\x80" * 11, "a varint longer than ten bytes"),
    (CHUNK_TAG, "no length"),
    (bytes([CHUNK << 3]) + b"\x01", "a varint field, not length-delimited"),
    (b"", "no field at all"),
])
def test_any_other_shape_is_not_one_field(data: bytes, why: str) -> None:
    assert wire.only_field(data) is None, why


def _varint(value: int, padding: int) -> bytes:
    """`value` as a varint, with `padding` more bytes than it needs (parsers accept those)."""
    out = bytearray()
    while True:
        out.append(value & 0x7F | 0x80)
        value >>= 7
        if not value:
            break
    out += b"\x80" * padding
    out[-1] &= 0x7F
    return bytes(out)


@st.composite
def fields(draw: st.DrawFn) -> bytes:
    """A tag, a length near the payload's (varints padded or not), the payload, maybe more."""
    payload = draw(st.binary(max_size=40))
    tag = draw(st.sampled_from([CHUNK_TAG[0], 0x0A, 0x1A, 0x10, 0x92]))
    length = len(payload) + draw(st.sampled_from([-1, 0, 0, 0, 1]))
    head = bytes([tag]) if tag < 0x80 else bytes([tag, 0x00])  # 0x92 0x00: the chunk tag, padded
    return (head + _varint(max(length, 0), draw(st.integers(0, 3))) + payload
            + draw(st.binary(max_size=3)))


@given(st.one_of(st.binary(max_size=64), fields()))
def test_what_is_taken_as_one_chunk_field_parses_as_that_chunk(data: bytes) -> None:
    found = wire.only_field(data)
    if found is None or found[0] != CHUNK:
        return
    try:
        parsed = Response.FromString(data)
    except DecodeError:
        pytest.fail(f"{data!r} taken as a chunk does not parse")
    assert parsed.WhichOneof("part") == "chunk"
    assert parsed.chunk == bytes(found[1])


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_a_chunk_with_anything_after_it_is_not_one_field(chunk: bytes, more: bytes) -> None:
    data = Response(chunk=chunk).SerializeToString() + more
    assert (wire.only_field(data) is None) == bool(more)
