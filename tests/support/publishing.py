"""Helpers for publishing tests: manifests to sign (or forge), and a publish that shares its
audit-log batch with a change that writes and then fails, so the batch is redone or fails whole
after the content was placed."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from agencies import errors
from agencies.client import AgencyClient
from gateway.v1 import catalog_pb2
from govshare import errors as gateway_errors
from tests.support.exchange import wait_for

CONTENT = b"region,beds\n440100,5321\n440300,4410\n" * 100
SCHEMA = [
    catalog_pb2.SchemaField(name="region", type=catalog_pb2.FIELD_TYPE_STRING,
                            description="GB/T 2260 code",
                            sensitivity=catalog_pb2.SENSITIVITY_NONE),
    catalog_pb2.SchemaField(name="beds", type=catalog_pb2.FIELD_TYPE_INTEGER,
                            sensitivity=catalog_pb2.SENSITIVITY_NONE),
]


def manifest(name: str = "agencies/gd-health/datasets/hospital-beds", content: bytes = CONTENT,
             **fields: Any) -> catalog_pb2.Manifest:
    """A valid manifest for `content` as version 1 of `name`, with `fields` replaced."""
    created = timestamp_pb2.Timestamp()
    created.GetCurrentTime()
    values: dict[str, Any] = {
        "dataset": name, "version": 1, "title": "Hospital beds", "abstract": "Beds by city",
        "media_type": catalog_pb2.MEDIA_TYPE_CSV, "schema": SCHEMA,
        "classification": catalog_pb2.CLASSIFICATION_PUBLIC,
        "sharing_type": catalog_pb2.SHARING_TYPE_UNCONDITIONAL,
        "update_cycle": catalog_pb2.UPDATE_CYCLE_MONTHLY, "tags": ["health", "beds"],
        "content_sha256": hashlib.sha256(content).digest(), "content_size": len(content),
        "create_time": created,
    }
    values.update(fields)
    return catalog_pb2.Manifest(**values)


def chunked(data: bytes, size: int = 1000) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def hold_committer(network: Any) -> threading.Event:
    """Block the audit committer in a change of its own until the returned event is set, so
    the changes queued meanwhile run together in its next batch."""
    release = threading.Event()
    threading.Thread(target=network.gateway.work.commit,
                     args=(lambda tx: (release.wait(30), []),)).start()
    wait_for(lambda: network.gateway.work._queue.qsize() == 0)
    return release


def publish_in_batch_with(network: Any, failing: Any, client: AgencyClient, dataset: str,
                          content: bytes) -> Any:
    """Publish `content` as version 1 of `dataset` in one batch with `failing`, a change that
    writes, then raises; returns the publish's response or error."""
    outcome: list[Any] = []

    def publish() -> None:
        try:
            outcome.append(client.publish(dataset, content, title="Fresh", version=1))
        except errors.GovshareError as exc:
            outcome.append(exc)

    release = hold_committer(network)
    publisher = threading.Thread(target=publish)
    publisher.start()
    wait_for(lambda: network.gateway.work._queue.qsize() == 1)
    breaker = threading.Thread(target=_commit_failing, args=(network, failing))
    breaker.start()
    wait_for(lambda: network.gateway.work._queue.qsize() == 2)
    release.set()
    publisher.join(30)
    breaker.join(30)
    return outcome[0]


def _commit_failing(network: Any, failing: Any) -> None:
    with pytest.raises(gateway_errors.GatewayError):
        network.gateway.work.commit(failing)


def write_event(tx: Any) -> None:
    tx.conn.execute("INSERT INTO events (recipient, type, resource, dataset, actor, summary,"
                    " create_time) VALUES (NULL, 'X', 'r', 'd', 'a', 's', 't')")


def failing_batch(tx: Any) -> None:
    """A change that writes, then makes the database fail the whole batch."""
    write_event(tx)
    tx.conn.execute("SELECT * FROM no_such_table")


def rows_csv(rows: int) -> bytes:
    return ("region,beds,doctors\n"
            + "".join(f"r{i},{i},d{i}\n" for i in range(rows))).encode()
