"""Hypothesis strategies for hostile input to the gateway.

`messages(descriptor, vocabulary)` builds arbitrary messages of any protobuf type from its
descriptor alone: every field may be set or not, strings come from the running network's real
resource names (as they are and mangled), huge, empty or unicode junk, integers from their
type's extremes, enums from unknown numbers, repeated fields from empty to a thousand elements,
envelopes from random bytes to statements properly sealed with an agency's key. Valid samples
(`Vocabulary.samples`) are mutated a few fields at a time, so fuzzing also reaches the checks
behind the first one. `Strategies.raw_requests(descriptor)` builds bytes that are not a valid
message at all: random bytes, invalid UTF-8 in string fields, truncations, lengths running past
the end, wrong wire types, nesting deeper than protobuf's recursion limit.

ALLOWED_CODES is the documented set of statuses the gateway may answer hostile input with
(docs/SECURITY.md, "Hostile input").
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message_factory
from google.protobuf.message import Message
from hypothesis import strategies as st

from gateway.v1 import catalog_pb2
from govshare import envelopes
from govshare.signing import SigningKey

Code = grpc.StatusCode
FieldDescriptor = pb_descriptor.FieldDescriptor

ALLOWED_CODES = frozenset({
    Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.PERMISSION_DENIED, Code.ALREADY_EXISTS,
    Code.FAILED_PRECONDITION, Code.RESOURCE_EXHAUSTED, Code.OUT_OF_RANGE, Code.DATA_LOSS,
    Code.CANCELLED,
})
"""What any RPC may answer a caller with valid certificates, whatever it sends. Never INTERNAL,
UNKNOWN or UNAUTHENTICATED."""
STREAM_CODES = ALLOWED_CODES | {Code.DEADLINE_EXCEEDED}
"""Server-streaming RPCs (WatchEvents) may also run until the caller's deadline."""

MiB = 1024 * 1024
MAX_DEPTH = 3
"""Message fields nested deeper than this stay unset."""
HUGE_STRINGS = ("x" * 100_000, "é" * 50_000, "agencies/" * 10_000, "\u202e" * 30_000,
                "\U0001f600" * 25_000)
OVER_LIMIT = "z" * (MiB + 100)
"""Larger than limits.max_message_bytes: the message as a whole is refused."""
JUNK = st.characters(exclude_categories=("Cs",))  # protobuf strings cannot hold lone surrogates

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}

_NAME_MANGLERS: tuple[Callable[[str], str], ...] = (
    lambda name: name + "/",
    lambda name: name + "\0",
    lambda name: name.upper(),
    lambda name: "../" + name,
    lambda name: name[:-1],
    lambda name: name + "/versions/0",
    lambda name: name.replace("-", "_"),
    lambda name: name + " OR 1=1 --",
    lambda name: name + "\u0301",
)


@dataclass(frozen=True)
class Vocabulary:
    """What the running network knows, so generated messages name things that exist."""

    names: tuple[str, ...]
    """Resource names, ids, cursors, region codes and payload types of the network."""
    keys: tuple[SigningKey, ...]
    """Agency signing keys, to seal generated statements properly."""
    samples: dict[str, tuple[Message, ...]] = field(default_factory=dict)
    """Valid messages by full type name, mutated a few fields at a time."""


def messages(descriptor: pb_descriptor.Descriptor, vocabulary: Vocabulary,
             depth: int = MAX_DEPTH) -> st.SearchStrategy[Message]:
    """Arbitrary messages of `descriptor`'s type (see the module docstring); build many with
    one `Strategies`, which shares the strategies of nested types."""
    return Strategies(vocabulary).messages(descriptor, depth)


# -- the builder ----------------------------------------------------------------------------------


class Strategies:
    """Message strategies of one vocabulary, built once per type and depth."""

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        self._cache: dict[tuple[str, int], st.SearchStrategy[Message]] = {}
        self.names = st.sampled_from(vocabulary.names)
        self.strings = st.one_of(
            self.names, self.names, self.names,
            st.tuples(self.names, st.sampled_from(_NAME_MANGLERS)).map(
                lambda pair: pair[1](pair[0])),
            st.just(""),
            st.text(JUNK, max_size=40),
            st.sampled_from(HUGE_STRINGS),
            st.integers(0, 40).map(lambda n: OVER_LIMIT if n == 0 else "y" * n),
        )
        self.short_strings = st.one_of(self.names, st.text(JUNK, max_size=8))
        self.bytes = st.one_of(
            st.binary(max_size=64), st.just(b""),
            st.sampled_from((b"\0" * 32, os.urandom(32), os.urandom(100_000))),
            self.names.map(str.encode),
        )

    def messages(self, descriptor: pb_descriptor.Descriptor,
                 depth: int = MAX_DEPTH) -> st.SearchStrategy:
        key = (descriptor.full_name, depth)
        if key not in self._cache:
            self._cache[key] = self._message(descriptor, depth)
        return self._cache[key]

    def raw_requests(self, descriptor: pb_descriptor.Descriptor) -> st.SearchStrategy[bytes]:
        """Bytes that do not parse as a `descriptor` message (and some that just barely do)."""
        key = (descriptor.full_name, -1)
        if key not in self._cache:
            self._cache[key] = self._raw(descriptor)
        return self._cache[key]

    def publish_streams(self, dataset: str, key: SigningKey) -> st.SearchStrategy[list[Message]]:
        """PublishDataset request streams: arbitrary sequences (chunks first, many manifests),
        and a fresh manifest of `dataset` sealed with `key` followed by its content as it is,
        cut, altered, extended, or split into a great many chunks."""
        request = self.messages(catalog_pb2.PublishDatasetRequest.DESCRIPTOR)
        return st.one_of(st.lists(request, max_size=6), _published(dataset, key))

    def _raw(self, descriptor: pb_descriptor.Descriptor) -> st.SearchStrategy[bytes]:
        strings = [f.number for f in descriptor.fields if f.type == FieldDescriptor.TYPE_STRING]
        serialized = self.messages(descriptor, depth=1).map(
            lambda message: message.SerializeToString())
        branches = [
            st.binary(max_size=300),
            st.tuples(serialized, st.integers(min_value=1)).map(
                lambda pair: pair[0][: pair[1] % max(len(pair[0]), 1)] + b"\x0a"),
            st.tuples(st.integers(1, 50), st.integers(2**20, 2**35)).map(
                lambda pair: _key(pair[0], 2) + _varint(pair[1]) + b"short"),
            st.integers(1, 50).map(lambda number: _key(number, 6) + b"\x00"),
            st.integers(80, 500).map(lambda depth: (_key(1, 3)) * depth),
            st.integers(1, 20).map(lambda number: _key(number, 0) + b"\xff" * 11),
        ]
        if strings:
            branches.append(st.tuples(st.sampled_from(strings), st.binary(max_size=40)).map(
                lambda pair: _length_delimited(pair[0], b"\xff\xfe" + pair[1])))
            branches.append(st.tuples(serialized, st.sampled_from(strings)).map(
                lambda pair: pair[0] + _length_delimited(pair[1], b"ok\xc3\x28ok")))
        return st.one_of(branches)

    def _message(self, descriptor: pb_descriptor.Descriptor, depth: int) -> st.SearchStrategy:
        cls = message_factory.GetMessageClass(descriptor)
        values = {f.name: self._field(f, depth) for f in descriptor.fields
                  if f.type != FieldDescriptor.TYPE_MESSAGE or depth > 0}
        generic = st.fixed_dictionaries({}, optional=values).map(
            lambda drawn: _assigned(cls(), descriptor, drawn))
        branches = [generic, *self._special(descriptor)]
        samples = self.vocabulary.samples.get(descriptor.full_name)
        if samples:
            branches += [_mutated(st.sampled_from(samples), descriptor, values)] * 2
        return st.one_of(branches)

    def _special(self, descriptor: pb_descriptor.Descriptor) -> list[st.SearchStrategy]:
        """Plausible values of the types that gate deeper checks: fresh times, sealed
        statements."""
        if descriptor.full_name == "google.protobuf.Timestamp":
            return [st.integers(-900, 900).map(_timestamp_from_now)]
        if descriptor.full_name == "gateway.v1.Envelope":
            return [self._sealed(payload_type) for payload_type in envelopes.PAYLOAD_TYPES]
        return []

    def _sealed(self, payload_type: str) -> st.SearchStrategy:
        statement = envelopes.PAYLOAD_TYPES[payload_type].DESCRIPTOR
        return st.tuples(st.sampled_from(self.vocabulary.keys),
                         self.messages(statement, MAX_DEPTH - 1)).map(
            lambda pair: envelopes.seal(pair[0], payload_type, pair[1]))

    def _field(self, f: FieldDescriptor, depth: int) -> st.SearchStrategy:
        single = self._single(f, depth)
        if not f.is_repeated:
            return single
        many = (st.just(message_factory.GetMessageClass(f.message_type)())
                if f.type == FieldDescriptor.TYPE_MESSAGE else self._single(f, depth, short=True))
        return st.one_of(
            st.lists(single, max_size=4),
            st.tuples(many, st.integers(20, 1200)).map(lambda pair: [pair[0]] * pair[1]),
        )

    def _single(self, f: FieldDescriptor, depth: int, short: bool = False) -> st.SearchStrategy:
        kind = f.type
        if kind == FieldDescriptor.TYPE_MESSAGE:
            return self.messages(f.message_type, depth - 1)
        if kind == FieldDescriptor.TYPE_STRING:
            return self.short_strings if short else self.strings
        if kind == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=8) if short else self.bytes
        if kind == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if kind == FieldDescriptor.TYPE_ENUM:
            known = [value.number for value in f.enum_type.values]
            return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))
        if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            return st.floats(width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64)
        low, high = _INT_RANGES[kind]
        return st.one_of(
            st.sampled_from(sorted({low, high, low + 1, high - 1, 0, max(low, -1)})),
            st.integers(max(low, -3), 3),
            st.integers(0, 10**6),
            st.integers(low, high),
        )


def _assigned(message: Message, descriptor: pb_descriptor.Descriptor,
              values: dict[str, Any]) -> Message:
    """`message` with `values` set field by field (later oneof members win)."""
    for name, value in values.items():
        f = descriptor.fields_by_name[name]
        if f.is_repeated:
            target = getattr(message, name)
            del target[:]
            target.extend(value)
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


@st.composite
def _mutated(draw: st.DrawFn, samples: st.SearchStrategy, descriptor: pb_descriptor.Descriptor,
             values: dict[str, st.SearchStrategy]) -> Message:
    """A valid sample, refreshed (time, nonce), with one to three fields replaced."""
    message = type(sample := draw(samples))()
    message.CopyFrom(sample)
    if "create_time" in descriptor.fields_by_name:
        message.create_time.GetCurrentTime()
    if "nonce" in descriptor.fields_by_name:
        message.nonce = os.urandom(16)
    names = draw(st.lists(st.sampled_from(sorted(values)), min_size=1, max_size=3, unique=True))
    return _assigned(message, descriptor, {name: draw(values[name]) for name in names})


@st.composite
def _published(draw: st.DrawFn, dataset: str, key: SigningKey) -> list[Message]:
    content = draw(st.binary(max_size=300))
    manifest = catalog_pb2.Manifest(
        dataset=dataset, version=draw(st.integers(1, 2**40)), title="fuzzed",
        media_type=catalog_pb2.MEDIA_TYPE_CSV,
        classification=catalog_pb2.CLASSIFICATION_INTERNAL,
        sharing_type=catalog_pb2.SHARING_TYPE_UNCONDITIONAL,
        update_cycle=catalog_pb2.UPDATE_CYCLE_IRREGULAR,
        content_sha256=hashlib.sha256(content).digest(), content_size=len(content))
    manifest.create_time.GetCurrentTime()
    sent = draw(st.sampled_from(_CONTENT_CHANGES))(content)
    size = draw(st.integers(1, 64))
    chunks = [sent[i:i + size] for i in range(0, len(sent), size)]
    if draw(st.booleans()):
        chunks = [sent[i:i + 1] for i in range(len(sent))] * draw(st.integers(1, 20))
    first = catalog_pb2.PublishDatasetRequest(
        manifest=envelopes.seal(key, envelopes.MANIFEST, manifest))
    return [first, *(catalog_pb2.PublishDatasetRequest(chunk=chunk) for chunk in chunks)]


_CONTENT_CHANGES: tuple[Callable[[bytes], bytes], ...] = (
    lambda content: content,
    lambda content: content[:-1],
    lambda content: content + b"!",
    lambda content: bytes([content[0] ^ 1]) + content[1:] if content else b"?",
)


def _timestamp_from_now(offset_seconds: int) -> Message:
    from google.protobuf.timestamp_pb2 import Timestamp

    return Timestamp(seconds=int(time.time()) + offset_seconds)


# -- wire format ----------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload
