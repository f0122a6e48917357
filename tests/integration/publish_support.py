"""Helpers for publishing tests: a publish that shares its audit-log batch with a change that
writes and then fails, so the batch is redone or fails whole after the content was placed."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from agencies import errors
from agencies.client import AgencyClient
from gateway import errors as gateway_errors
from tests.integration.exchange_support import wait_for


def hold_committer(network: Any) -> threading.Event:
    """Block the audit committer in a change of its own until the returned event is set, so
    the changes queued meanwhile run together in its next batch."""
    release = threading.Event()
    threading.Thread(target=network.gateway.log.commit,
                     args=(lambda tx: (release.wait(30), []),)).start()
    wait_for(lambda: network.gateway.log._queue.qsize() == 0)
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
    wait_for(lambda: network.gateway.log._queue.qsize() == 1)
    breaker = threading.Thread(target=_commit_failing, args=(network, failing))
    breaker.start()
    wait_for(lambda: network.gateway.log._queue.qsize() == 2)
    release.set()
    publisher.join(30)
    breaker.join(30)
    return outcome[0]


def _commit_failing(network: Any, failing: Any) -> None:
    with pytest.raises(gateway_errors.GatewayError):
        network.gateway.log.commit(failing)


def write_event(tx: Any) -> None:
    tx.conn.execute("INSERT INTO events (recipient, type, resource, dataset, actor, summary,"
                    " create_time) VALUES (NULL, 'X', 'r', 'd', 'a', 's', 't')")


def failing_batch(tx: Any) -> None:
    """A change that writes, then makes the database fail the whole batch."""
    write_event(tx)
    tx.conn.execute("SELECT * FROM no_such_table")
