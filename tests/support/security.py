"""Helpers of the security tests: statements signed with any key, and wire-level test doubles."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from agencies.client import BaseClient
from gateway.v1 import (
    audit_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    directory_pb2_grpc,
    envelope_pb2,
    exchange_pb2,
    exchange_pb2_grpc,
)
from govshare import envelopes, signing, times

CONTENT = b"region,beds\n440000,1200\n"


def stamp(offset: timedelta = timedelta(0)) -> timestamp_pb2.Timestamp:
    """Now (plus `offset`) as a Timestamp."""
    return times.to_timestamp(times.utcnow() + offset)


def manifest(dataset: str, content: bytes = CONTENT, **fields: Any) -> catalog_pb2.Manifest:
    """A valid version-1 manifest for `content`; `fields` override any field."""
    values: dict[str, Any] = {
        "dataset": dataset, "version": 1, "title": "Hospital beds by region",
        "media_type": catalog_pb2.MEDIA_TYPE_CSV,
        "classification": catalog_pb2.CLASSIFICATION_INTERNAL,
        "sharing_type": catalog_pb2.SHARING_TYPE_CONDITIONAL,
        "update_cycle": catalog_pb2.UPDATE_CYCLE_MONTHLY,
        "content_sha256": signing.sha256(content), "content_size": len(content),
        "create_time": stamp(),
    }
    values.update(fields)
    return catalog_pb2.Manifest(**values)


def publish_stream(envelope: envelope_pb2.Envelope,
                   content: bytes = CONTENT) -> Iterator[catalog_pb2.PublishDatasetRequest]:
    yield catalog_pb2.PublishDatasetRequest(manifest=envelope)
    yield catalog_pb2.PublishDatasetRequest(chunk=content)


def decision(name: str, outcome: int, reason: str = "",
             offset: timedelta = timedelta(0)) -> exchange_pb2.DecisionStatement:
    """A fresh decision statement on access request `name`."""
    return exchange_pb2.DecisionStatement(access_request=name, outcome=outcome, reason=reason,
                                          create_time=stamp(offset), nonce=os.urandom(16))


def sealed(key: signing.SigningKey, payload_type: str, statement: Any) -> envelope_pb2.Envelope:
    return envelopes.seal(key, payload_type, statement)


def flip_byte(data: bytes, index: int = -1) -> bytes:
    """`data` with one bit of one byte changed."""
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def restub(client: BaseClient, channel: grpc.Channel) -> None:
    """Point a client's stubs at `channel` (an intercepted view of its own channel)."""
    client.directory = directory_pb2_grpc.DirectoryServiceStub(channel)
    client.catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
    client.exchange = exchange_pb2_grpc.ExchangeServiceStub(channel)
    client.audit = audit_pb2_grpc.AuditServiceStub(channel)


class RequestTap(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                 grpc.StreamUnaryClientInterceptor):
    """Hands every request message a client sends to `see`."""

    def __init__(self, see: Callable[[Any], None]):
        self.see = see

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.see(request)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self.see(request)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        def tapped() -> Iterator[Any]:
            for request in requests:
                self.see(request)
                yield request

        return continuation(details, tapped())


class Tamperer(grpc.UnaryStreamClientInterceptor):
    """A network that changes one byte of what a FetchDataset stream carries: the receipt's
    payload ("receipt") or the signed manifest's in the first message ("start")."""

    def __init__(self, part: str):
        self.part = part

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return _TamperedStream(continuation(details, request), self.part)


class _TamperedStream:
    """The call's responses with one part altered; everything else passes through."""

    def __init__(self, call: Any, part: str):
        self._call = call
        self._part = part

    def __iter__(self) -> Iterator[Any]:
        for response in self._call:
            if response.WhichOneof("part") == self._part:
                envelope = (response.receipt if self._part == "receipt"
                            else response.start.signed_manifest)
                envelope.payload = flip_byte(envelope.payload, 5)
            yield response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)
