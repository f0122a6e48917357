"""FetchDataset: stream a dataset version under an active grant, then sign a receipt.

The stream is a FetchStart (exchange, version, the publisher's signed manifest, grant, offset),
the content from `offset` in config.limits.max_chunk_bytes chunks, then the gateway's signed
Receipt. The exchange row and its audit events follow the stream: STARTED with
"exchange.fetch.start", COMPLETED with "exchange.fetch.complete" (the receipt names that
event's leaf), BROKEN with "exchange.fetch.break" when the client goes away, the grant is
revoked or expires mid-stream, or the stored content no longer matches its hash.

Costs per fetch: the blob is read once, one copy per chunk; the grant row is re-read at most
every GRANT_CHECK_SECONDS. The gateway hashes what it streams whenever the blob file may have
changed since it was last hashed (always after a restart; never right after its own publish),
so altered content is refused with DATA_LOSS instead of a receipt, without paying a second
SHA-256 pass, beside the SDK's, on every fetch.

The gateway's CA-issued signing certificate travels in the stream's initial metadata
(statements.GATEWAY_CERTIFICATE_KEY), so the SDK can check the receipt against the national CA.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from gateway import errors, spool, statements, times
from gateway.audit import record
from gateway.audit.log import Tx
from gateway.exchange import DATASET_NAME, agency_name
from gateway.ids import new_id
from gateway.rpc import Call
from gateway.signing import StreamHasher
from gateway.storage import catalog as catalog_sql
from gateway.storage import exchange as sql
from gateway.v1 import envelope_pb2, exchange_pb2

if TYPE_CHECKING:
    from gateway.server import Gateway

VERSION_NAME = re.compile(r"^(agencies/[^/]+/datasets/[^/]+)/versions/([1-9][0-9]*)$")
EXCHANGE_NAME = re.compile(r"^agencies/([^/]+)/exchanges/([0-9a-f]{32})$")

GRANT_CHECK_SECONDS = 0.1
"""How often a running fetch re-reads its grant: a revocation stops it within this time."""


@dataclass
class Plan:
    """What one fetch delivers, decided before the first byte."""

    name: str
    requester: str
    version: dict[str, Any]
    grant: dict[str, Any]
    offset: int
    resumed: bool

    def resources(self) -> tuple[str, ...]:
        return (self.name, agency_name(self.requester), agency_name(self.grant["owner"]),
                self.version["dataset"], self.version["name"], self.grant["name"])


def serve(
    gateway: Gateway, call: Call, dataset: str, offset: int, exchange: str,
) -> Iterator[exchange_pb2.FetchDatasetResponse]:
    """The FetchDataset stream (see the module docstring)."""
    plan = _plan(gateway, call, dataset, offset, exchange)
    blob = _open_blob(gateway, plan.version)
    with blob:
        _start(gateway, call, plan)
        call.context.send_initial_metadata(
            ((statements.GATEWAY_CERTIFICATE_KEY, gateway.signing_certificate_pem.encode()),))
        try:
            yield _first_message(plan)
            digest = plan.version["content_sha256"]
            hasher = None if gateway.blobs.unchanged_since_hashed(digest, blob) else StreamHasher()
            yield from _chunks(gateway, call, plan, blob, hasher)
            if hasher is not None:
                if hasher.hexdigest() != digest:
                    _break(gateway, call, plan, errors.DataLoss(
                        f"the stored content of {plan.version['name']} no longer matches its"
                        " SHA-256; the operator must restore it from a backup",
                        version=plan.version["name"]))
                gateway.blobs.hashed(digest, os.fstat(blob.fileno()))
            receipt = _complete(gateway, call, plan)
        except GeneratorExit:
            _record_break(gateway, call, plan, "CANCELLED: the client ended the stream")
            raise
        # Outside the try: a client that closes the stream once it has the receipt must not
        # turn the COMPLETED exchange into a BROKEN one.
        yield exchange_pb2.FetchDatasetResponse(receipt=receipt)


def _plan(gateway: Gateway, call: Call, dataset: str, offset: int, exchange: str) -> Plan:
    requester = call.caller.identity.id
    reader = gateway.db.reader()
    now = times.to_text(gateway.now())
    resumed = _resumable(reader, requester, exchange) if exchange else None
    dataset_name, version_name = _parse(resumed["dataset_version"] if resumed else dataset)
    if resumed and dataset not in (dataset_name, version_name):
        raise errors.InvalidArgument(f"exchange {exchange} delivers {version_name}, not {dataset}",
                                     field="dataset")
    call.resources = [dataset_name, agency_name(dataset_name.split("/")[1]), exchange]
    grant = sql.active_grant(reader, requester, dataset_name, now)
    if grant is None:
        raise errors.PermissionDenied(
            f"you hold no active grant on {dataset_name}: request access first",
            reason="NO_ACTIVE_GRANT", dataset=dataset_name,
        )
    version = (catalog_sql.get_version(reader, version_name) if version_name
               else catalog_sql.latest_version(reader, dataset_name))
    if version is None:
        raise errors.NotFound(f"{version_name or dataset_name} has no such version",
                              reason="VERSION_NOT_FOUND", dataset=dataset)
    if not 0 <= offset <= version["content_size"]:
        raise errors.InvalidArgument(
            f"offset must be between 0 and the content size {version['content_size']}",
            reason="OFFSET_OUT_OF_RANGE", field="offset")
    if offset and not resumed:
        raise errors.InvalidArgument("an offset resumes an exchange: give its name too",
                                     field="exchange")
    name = exchange or f"agencies/{requester}/exchanges/{new_id()}"
    return Plan(name, requester, version, grant, offset, resumed is not None)


def _parse(dataset: str) -> tuple[str, str]:
    """(dataset name, version name or "") of a dataset or version resource name."""
    match = VERSION_NAME.match(dataset)
    if match:
        return match.group(1), dataset
    if DATASET_NAME.match(dataset):
        return dataset, ""
    raise errors.InvalidArgument(
        "dataset must be agencies/{agency}/datasets/{dataset}[/versions/{version}]",
        field="dataset")


def _resumable(reader: Any, requester: str, name: str) -> dict[str, Any]:
    match = EXCHANGE_NAME.match(name)
    if not match:
        raise errors.InvalidArgument("exchange must be agencies/{agency}/exchanges/{exchange}",
                                     field="exchange")
    if match.group(1) != requester:
        raise errors.PermissionDenied(f"{name} is not one of your exchanges",
                                      reason="NOT_A_PARTY", exchange=name)
    row = sql.get_exchange(reader, name)
    if row is None:
        raise errors.NotFound(f"exchange {name} does not exist", exchange=name)
    if row["state"] == "COMPLETED":
        raise errors.FailedPrecondition(f"{name} completed already: start a new fetch",
                                        reason="EXCHANGE_COMPLETED", exchange=name)
    return row


def _open_blob(gateway: Gateway, version: dict[str, Any]) -> IO[bytes]:
    """The stored content, refused at once when it is missing or its size changed."""
    try:
        blob = gateway.blobs.open(version["content_sha256"])
    except FileNotFoundError:
        raise errors.DataLoss(f"the stored content of {version['name']} is missing",
                              reason="CONTENT_MISSING", version=version["name"]) from None
    if os.fstat(blob.fileno()).st_size != version["content_size"]:
        blob.close()
        raise errors.DataLoss(f"the stored content of {version['name']} no longer matches its"
                              " size", version=version["name"])
    return blob


def _start(gateway: Gateway, call: Call, plan: Plan) -> None:
    def change(tx: Tx) -> tuple[None, list]:
        when = times.to_text(tx.now)
        if sql.grant_usable(tx.conn, plan.grant["name"], when) != "ACTIVE":
            raise errors.PermissionDenied(f"{plan.grant['name']} is no longer active",
                                          reason="NO_ACTIVE_GRANT", grant=plan.grant["name"])
        if plan.resumed:
            sql.set_exchange_state(tx.conn, plan.name, "STARTED")
        else:
            sql.insert_exchange(tx.conn, {
                "name": plan.name, "requester": plan.requester, "owner": plan.grant["owner"],
                "dataset_version": plan.version["name"], "grant_name": plan.grant["name"],
                "state": "STARTED", "create_time": when, "complete_time": None,
                "receipt": None,
            })
        return None, [call.event("exchange.fetch.start", resources=plan.resources(),
                                 reason=f"offset {plan.offset}")]

    gateway.log.commit(change, call.refusal)


def _first_message(plan: Plan) -> exchange_pb2.FetchDatasetResponse:
    return exchange_pb2.FetchDatasetResponse(start=exchange_pb2.FetchStart(
        exchange=plan.name, dataset_version=plan.version["name"],
        signed_manifest=envelope_pb2.Envelope.FromString(plan.version["signed_manifest"]),
        grant=plan.grant["name"], offset=plan.offset,
    ))


def _chunks(
    gateway: Gateway, call: Call, plan: Plan, blob: IO[bytes], hasher: StreamHasher | None
) -> Iterator[exchange_pb2.FetchDatasetResponse]:
    """The content from plan.offset (hashed from byte 0 when `hasher` is given), stopping when
    the grant ends."""
    size = gateway.config.limits.max_chunk_bytes
    if hasher is None:
        blob.seek(plan.offset)
    remaining = plan.offset if hasher is not None else 0
    while remaining:
        block = blob.read(min(size, remaining))
        hasher.update(block)
        remaining -= len(block)
    next_check = time.monotonic() + GRANT_CHECK_SECONDS
    dropped = 0
    while chunk := blob.read(size):
        if hasher is not None:
            hasher.update(chunk)
        yield exchange_pb2.FetchDatasetResponse(chunk=chunk)
        if (position := blob.tell()) - dropped >= spool.RECYCLE_EVERY:
            spool.drop_cached(blob, position)  # large content streams through recycled pages
            dropped = position
        if time.monotonic() >= next_check:
            _check_grant(gateway, call, plan)
            next_check = time.monotonic() + GRANT_CHECK_SECONDS
    _check_grant(gateway, call, plan)


def _check_grant(gateway: Gateway, call: Call, plan: Plan) -> None:
    """Break the exchange off when its grant was revoked or has expired."""
    state = sql.grant_usable(gateway.db.reader(), plan.grant["name"],
                             times.to_text(gateway.now()))
    if state != "ACTIVE":
        _break(gateway, call, plan, errors.PermissionDenied(
            f"{plan.grant['name']} is {state}: the fetch was stopped",
            reason=f"GRANT_{state}", grant=plan.grant["name"]))


def _break(gateway: Gateway, call: Call, plan: Plan, error: errors.GatewayError) -> None:
    """Record the exchange as BROKEN with its refusal event, then raise `error`."""
    _record_break(gateway, call, plan, f"{error.reason}: {error.message}", refused=True)
    error.audited = True
    raise error


def _record_break(gateway: Gateway, call: Call, plan: Plan, reason: str, *,
                  refused: bool = False) -> None:
    def change(tx: Tx) -> tuple[None, list]:
        sql.set_exchange_state(tx.conn, plan.name, "BROKEN")
        event = call.event("exchange.fetch.break", resources=plan.resources(), reason=reason,
                           outcome="REFUSED" if refused else "ALLOWED")
        return None, [event]

    gateway.log.commit(change)


def break_interrupted(gateway: Gateway) -> None:
    """At start-up, mark the exchanges a stop interrupted BROKEN, each with its audit event
    (their requesters may still resume them)."""

    def change(tx: Tx) -> tuple[None, list]:
        events = []
        for row in sql.started_exchanges(tx.conn):
            sql.set_exchange_state(tx.conn, row["name"], "BROKEN")
            events.append(record.Event(
                actor=gateway.identity.uri, action="exchange.fetch.break",
                resources=(row["name"], agency_name(row["requester"]),
                           agency_name(row["owner"]), row["dataset_version"], row["grant_name"]),
                reason="the gateway stopped while the fetch was running"))
        return None, events

    gateway.log.commit(change)


def _complete(gateway: Gateway, call: Call, plan: Plan) -> envelope_pb2.Envelope:
    """Mark the exchange COMPLETED and sign the receipt naming its audit leaf."""
    version = plan.version

    def change(tx: Tx) -> tuple[envelope_pb2.Envelope, list]:
        receipt = statements.seal(gateway.signing_key, statements.RECEIPT, exchange_pb2.Receipt(
            exchange=plan.name, requester=agency_name(plan.requester),
            owner=agency_name(plan.grant["owner"]), dataset_version=version["name"],
            content_sha256=bytes.fromhex(version["content_sha256"]),
            content_size=version["content_size"], grant=plan.grant["name"],
            complete_time=times.to_timestamp(tx.now), audit_leaf_index=tx.next_leaf_index,
            audit_log_origin=gateway.config.audit.origin,
        ))
        sql.set_exchange_state(tx.conn, plan.name, "COMPLETED", when=times.to_text(tx.now),
                               receipt=receipt.SerializeToString())
        event = call.event("exchange.fetch.complete", resources=plan.resources(),
                           envelope_ids=(statements.envelope_id(receipt),))
        return receipt, [event]

    return gateway.log.commit(change, call.refusal).value
