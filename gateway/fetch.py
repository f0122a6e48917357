"""FetchDataset: stream a dataset version under an active grant, then sign a receipt.

The stream is a FetchStart (exchange, version, the publisher's signed manifest, grant, offset),
the content from `offset` in config.limits.max_chunk_bytes chunks, then the gateway's signed
Receipt. The exchange row and its audit events follow the stream: STARTED with
"exchange.fetch.start", COMPLETED with "exchange.fetch.complete" (the receipt names that
event's leaf), BROKEN with "exchange.fetch.break" when the stream ends any other way: the client
goes away, the grant is revoked or expires, the requester is suspended or its certificate
revoked mid-stream, the stored content no longer matches its hash, or the gateway fails. Only a
STARTED exchange completes or breaks, so a COMPLETED one never goes back; one exchange is
streamed by one call at a time. An owner does not fetch its own dataset (OWN_DATASET): there is
no grant to deliver it under, and so no receipt to give.

What is delivered is the publisher's signed content, whole, to a grant naming no fields; to a
grant naming fields it is a projection (govshare.columns) of the granted fields, in schema
order, which the SDK verifies against the column digests the publisher signed. The
gateway recomputes those digests from what it projects and refuses with DATA_LOSS, before the
receipt, when they differ; a version without them is refused (GRANT_FIELDS_NARROWER). Nothing
is delivered from a dataset whose owner now marks it NOT_SHARED.

Costs per fetch: the blob is read once, one copy per chunk; the grant row (and the requester's
cached directory row) is re-read at most every GRANT_CHECK_SECONDS. The gateway hashes what it
streams whenever the blob file may have changed since it was last hashed (always after a
restart; never right after its own publish), so altered content is refused with DATA_LOSS
instead of a receipt, without paying a second SHA-256 pass, beside the SDK's, on every fetch.
A projection parses the whole content (CSV at tens of MB/s) and hashes what it delivers (the
receipt binds it), one row in memory at a time; a resumed one is regenerated from the start.

The gateway's CA-issued signing certificate travels in the stream's initial metadata
(envelopes.GATEWAY_CERTIFICATE_KEY), so the SDK can check the receipt against the national CA.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from gateway import catalog, policy
from gateway.blobs import BlobStore
from gateway.catalog import DatasetCache
from gateway.config import LimitsConfig
from gateway.context import Call
from gateway.directory import Directory
from gateway.identity import Authenticator
from gateway.models import Dataset, Exchange, Grant, Version
from gateway.storage import Database
from gateway.storage import catalog as catalog_sql
from gateway.storage import exchange as sql
from gateway.unit_of_work import Tx, UnitOfWork
from gateway.v1 import catalog_pb2, envelope_pb2, exchange_pb2
from govshare import columns, envelopes, errors, spool, times
from govshare.ids import new_id
from govshare.names import AgencyName, DatasetName, ExchangeName, VersionName
from govshare.signing import SigningKey, StreamHasher
from govshare.transparency import record

GRANT_CHECK_SECONDS = 0.1
"""How often a running fetch re-reads its grant, its requester's directory state and the CRL: a
revocation (of the grant or of the requester's certificate) or a suspension stops it within this
time."""

CLAIM_WAIT_SECONDS = 1.0
"""How long a resume waits for the stream it follows to notice its client has gone."""


@dataclass
class Plan:
    """What one fetch delivers, decided before the first byte."""

    name: str
    requester: str
    version: Version
    manifest: catalog_pb2.Manifest
    grant: Grant
    fields: list[str]
    """The fields projected, in schema order; empty: the whole content."""
    offset: int
    resumed: bool

    def resources(self) -> tuple[str, ...]:
        return (self.name, str(AgencyName(self.requester)), str(AgencyName(self.grant.owner)),
                self.version.dataset, self.version.name, self.grant.name)


class Streaming:
    """The exchanges being streamed in this process: a second stream of one exchange would
    write its bytes and states over the first's."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._released = threading.Condition()

    @contextmanager
    def claim(self, name: str) -> Iterator[None]:
        """Hold `name` while streaming it; FAILED_PRECONDITION if another call still does after
        CLAIM_WAIT_SECONDS (so a client that cancelled and resumes at once is not refused)."""
        with self._released:
            if not self._released.wait_for(lambda: name not in self._names, CLAIM_WAIT_SECONDS):
                raise errors.FailedPrecondition(
                    f"{name} is being streamed by another call right now: wait for that fetch"
                    " to end, or cancel it, then resume",
                    reason="EXCHANGE_IN_PROGRESS", exchange=name)
            self._names.add(name)
        try:
            yield
        finally:
            with self._released:
                self._names.discard(name)
                self._released.notify_all()


STREAMING = Streaming()
"""Process-wide: exchange names are random 128-bit ids, unique across gateways."""


class Fetcher:
    """Serves FetchDataset streams (see the module docstring) and breaks, at start-up, those a
    stop interrupted."""

    def __init__(self, db: Database, work: UnitOfWork, datasets: DatasetCache, blobs: BlobStore,
                 directory: Directory, authenticator: Authenticator, limits: LimitsConfig,
                 signing_key: SigningKey, signing_certificate_pem: str, origin: str,
                 clock: Callable[[], datetime], member_id: str = ""):
        self._db = db
        self._work = work
        self._datasets = datasets
        self._blobs = blobs
        self._directory = directory
        self._authenticator = authenticator
        self._limits = limits
        self._signing_key = signing_key
        self._signing_certificate_pem = signing_certificate_pem
        self._origin = origin
        self._clock = clock
        """Read as a stream goes on: its grant must still be active at each check."""
        self._member_id = member_id
        """This gateway's id in its network ("": no network member), its receipts' first
        carrier."""

    def serve(
        self, call: Call, dataset: str, offset: int, exchange: str,
    ) -> Iterator[exchange_pb2.FetchDatasetResponse]:
        """The FetchDataset stream (see the module docstring)."""
        plan = self._plan(call, dataset, offset, exchange)
        with STREAMING.claim(plan.name):
            blob, opened = self._open_blob(plan)
            with blob:
                self._start(call, plan)
                try:
                    call.transport.send_initial_metadata(
                        ((envelopes.GATEWAY_CERTIFICATE_KEY,
                          self._signing_certificate_pem.encode()),))
                    yield _first_message(plan)
                    delivered = yield from self._content(call, plan, blob, opened)
                    receipt = self._complete(call, plan, delivered)
                except BaseException as exc:  # the client left, a refusal, or a failure
                    self._record_break(call, plan, exc)
                    raise
        # Outside the try: a client that closes the stream once it has the receipt must not
        # turn the COMPLETED exchange into a BROKEN one.
        yield exchange_pb2.FetchDatasetResponse(receipt=receipt)

    def _plan(self, call: Call, dataset: str, offset: int, exchange: str) -> Plan:
        requester = call.caller.identity.id
        reader = self._db.reader()
        now = times.to_text(call.time)
        resumed = _resumable(reader, requester, exchange) if exchange else None
        parsed, version_name = _parse(resumed.dataset_version if resumed else dataset)
        dataset_name = str(parsed)
        if resumed and dataset not in (dataset_name, version_name):
            raise errors.InvalidArgument(
                f"exchange {exchange} delivers {version_name}, not {dataset}", field="dataset")
        call.resources = [dataset_name, str(parsed.owner), exchange]
        if parsed.agency == requester:
            raise errors.FailedPrecondition(
                f"{dataset_name} is your own dataset: owners read their own datasets with"
                " GetDataset and ListDatasetVersions (show, versions); its content stays with the"
                " publisher, and FetchDataset delivers it to other agencies under a grant",
                reason="OWN_DATASET", dataset=dataset_name)
        grants = sql.active_grants(reader, requester, dataset_name, now)
        if not grants:
            raise errors.PermissionDenied(
                f"you hold no active grant on {dataset_name}: request access first",
                reason="NO_ACTIVE_GRANT", dataset=dataset_name,
            )
        version = (catalog_sql.get_version(reader, version_name) if version_name
                   else catalog_sql.latest_version(reader, dataset_name))
        if version is None or (version_name and not catalog.visible_under(grants, version)):
            # A version the requester may not see answers as one never published:
            # ListDatasetVersions leaves it out, and numbers tried in turn must not list it.
            raise errors.NotFound(f"{version_name or dataset_name} has no such version",
                                  reason="VERSION_NOT_FOUND", dataset=dataset)
        manifest = _manifest(version.signed_manifest)
        grant = self._opening_grant(grants, version)
        fields = _projection(grant, version.name, manifest)
        if offset < 0 or (offset > version.content_size and not fields):
            raise _offset_out_of_range(version.content_size)
        if offset and not resumed:
            raise errors.InvalidArgument("an offset resumes an exchange: give its name too",
                                         field="exchange")
        if offset and resumed:
            _check_same_fields(reader, resumed, fields, version.name, manifest, now)
        name = exchange or str(AgencyName(requester).exchange(new_id()))
        return Plan(name, requester, version, manifest, grant, fields, offset, resumed is not None)

    def _opening_grant(self, grants: list[Grant], version: Version) -> Grant:
        """The grant that delivers `version`: the longest lasting of the requester's active
        `grants` whose terms cover it (policy.covers). Refused when the version, or the dataset's
        latest version, is NOT_SHARED (the owner's current decision governs the grants it gave
        earlier), or published under terms stricter than every grant covers. A refusal names a
        version's terms only to a caller that may see that version."""
        dataset = version.dataset
        latest = self._datasets.dataset(dataset)
        for row, which in ((version, version.name),
                           (latest, f"the latest version of {dataset}")):
            if policy.sharing_type(row) == "NOT_SHARED" and catalog.visible_under(grants, row):
                raise errors.FailedPrecondition(
                    f"{which} is NOT_SHARED: its owner does not share {dataset} now, so no grant"
                    " delivers it; ask the owner", reason="DATASET_NOT_SHARED", dataset=dataset)
        grant = next((grant for grant in grants if policy.covers(grant, version)), None)
        if grant is None:
            raise _stricter(grants, dataset, version, version.name)
        if policy.sharing_type(latest) == "NOT_SHARED":  # hidden from the caller: see above
            raise _stricter(grants, dataset, latest)
        return grant

    def _open_blob(self, plan: Plan) -> tuple[IO[bytes], os.stat_result]:
        """The stored content (in its publisher's namespace, the grant's owner) and its file status
        at open, refused at once when it is missing or its size changed."""
        version = plan.version
        try:
            blob = self._blobs.open(plan.grant.owner, version.content_sha256)
        except FileNotFoundError:
            raise errors.DataLoss(f"the stored content of {version.name} is missing",
                                  reason="CONTENT_MISSING", version=version.name) from None
        opened = os.fstat(blob.fileno())
        if opened.st_size != version.content_size:
            blob.close()
            raise _altered(version)
        return blob, opened

    def _start(self, call: Call, plan: Plan) -> None:
        def change(tx: Tx) -> tuple[None, list]:
            when = times.to_text(tx.now)
            if sql.grant_usable(tx.conn, plan.grant.name, when) != "ACTIVE":
                raise errors.PermissionDenied(f"{plan.grant.name} is no longer active",
                                              reason="NO_ACTIVE_GRANT", grant=plan.grant.name)
            if plan.resumed:
                if not sql.restart_exchange(tx.conn, plan.name, plan.grant.name):
                    raise _completed(plan.name)
            else:
                sql.insert_exchange(tx.conn, Exchange(
                    name=plan.name, requester=plan.requester, owner=plan.grant.owner,
                    dataset_version=plan.version.name, grant_name=plan.grant.name,
                    state="STARTED", create_time=when,
                ))
            return None, [call.event("exchange.fetch.start", resources=plan.resources(),
                                     reason=f"offset {plan.offset}; {_delivering(plan)}")]

        self._work.commit(change, call.refusal)

    def _content(
        self, call: Call, plan: Plan, blob: IO[bytes], opened: os.stat_result
    ) -> Generator[exchange_pb2.FetchDatasetResponse, None, Delivered]:
        """The content chunks (or its projection's), the blob hashed unless it is untouched since it
        was last hashed; DATA_LOSS when what was read does not match the version, or a projection's
        columns do not match the publisher's digests."""
        digest = plan.version.content_sha256
        owner = plan.grant.owner
        hasher = None if self._blobs.unchanged_since_hashed(owner, digest, blob) else StreamHasher()
        if plan.fields:
            projected, found = yield from self._project(call, plan,
                                                   self._blocks(plan, blob, 0, hasher))
        else:
            yield from self._send(call, plan, self._blocks(plan, blob, plan.offset, hasher))
        if blob.tell() != plan.version.content_size or (
                hasher is not None and hasher.hexdigest() != digest):
            raise _altered(plan.version)
        if hasher is not None:
            # The status at open, not now: a write during the stream moved the file's ctime past
            # it, so the next fetch hashes again instead of trusting bytes this one never read.
            self._blobs.hashed(owner, digest, opened)
        if not plan.fields:
            return bytes.fromhex(digest), plan.version.content_size
        if found != columns.signed_columns(plan.manifest, plan.fields):
            raise _columns_mismatch(plan, "do not match the column digests and row count its"
                                          " publisher signed")
        return projected.digest(), projected.size

    def _blocks(self, plan: Plan, blob: IO[bytes], start: int,
                hasher: StreamHasher | None) -> Iterator[bytes]:
        """The blob from `start` to the version's size (hashed from byte 0 when `hasher` is given),
        in blocks of max_chunk_bytes; large content streams through recycled pages."""
        size = self._limits.max_chunk_bytes
        end = plan.version.content_size
        if hasher is None:
            blob.seek(start)
        else:
            while (remaining := start - blob.tell()) > 0 and (
                    block := blob.read(min(size, remaining))):
                hasher.update(block)
        dropped = 0
        while (remaining := end - blob.tell()) > 0 and (chunk := blob.read(min(size, remaining))):
            if hasher is not None:
                hasher.update(chunk)
            yield chunk
            if (position := blob.tell()) - dropped >= spool.RECYCLE_EVERY:
                spool.drop_cached(blob, position)
                dropped = position

    def _project(
        self, call: Call, plan: Plan, blocks: Iterable[bytes]
    ) -> Generator[exchange_pb2.FetchDatasetResponse, None, tuple[StreamHasher, columns.Columns]]:
        """Send the projection of the content onto plan.fields from plan.offset; returns the hash
        of the whole projection and the columns it holds."""
        projection = columns.Projection(blocks, plan.manifest.media_type, plan.fields)
        projected = StreamHasher()
        size = self._limits.max_chunk_bytes
        try:
            yield from self._send(call, plan, _from(projection, plan.offset, projected, size))
        except columns.ColumnError as exc:
            raise _columns_mismatch(plan, f"cannot be projected: {exc}") from None
        if projected.size < plan.offset:
            raise _offset_out_of_range(projected.size)
        assert projection.columns is not None  # set once the projection is exhausted
        return projected, projection.columns

    def _send(self, call: Call, plan: Plan,
              chunks: Iterable[bytes]) -> Iterator[exchange_pb2.FetchDatasetResponse]:
        """Send the chunks, stopping when the fetch may no longer go on."""
        next_check = time.monotonic() + GRANT_CHECK_SECONDS
        for chunk in chunks:
            yield exchange_pb2.FetchDatasetResponse(chunk=chunk)
            if time.monotonic() >= next_check:
                self._check_allowed(call, plan)
                next_check = time.monotonic() + GRANT_CHECK_SECONDS
        self._check_allowed(call, plan)

    def _check_allowed(self, call: Call, plan: Plan) -> None:
        """Stop the exchange when its requester's certificate was revoked or the requester
        suspended, or its grant revoked or expired."""
        self._authenticator.recheck(call.connection)  # UNAUTHENTICATED, as at a call's start
        self._directory.acting(call)  # PERMISSION_DENIED, likewise
        state = sql.grant_usable(self._db.reader(), plan.grant.name,
                                 times.to_text(self._clock()))
        if state != "ACTIVE":
            raise errors.PermissionDenied(f"{plan.grant.name} is {state}: the fetch was stopped",
                                          reason=f"GRANT_{state}", grant=plan.grant.name)

    def _record_break(self, call: Call, plan: Plan, exc: BaseException) -> None:
        """Mark the exchange BROKEN with its audit event: the refusal itself when `exc` is one
        (so it is not audited twice). Nothing is written when the exchange is no longer STARTED."""
        reason, outcome = broken_by(exc)

        def change(tx: Tx) -> tuple[bool, list]:
            if not sql.end_exchange(tx.conn, plan.name, "BROKEN"):
                return False, []
            return True, [call.event("exchange.fetch.break", resources=plan.resources(),
                                     reason=reason, outcome=outcome)]

        if self._work.commit(change).value and isinstance(exc, errors.GatewayError):
            exc.audited = True

    def _carriers(self, call: Call) -> list[str]:
        """The member gateways that carry this fetch's data: this one, and the peer that relays
        it for its agency (none outside a network)."""
        if not self._member_id:
            return []
        return [self._member_id, *([call.via.identity.id] if call.via is not None else [])]

    def break_interrupted(self, actor: str) -> None:
        """At start-up, mark the exchanges a stop interrupted BROKEN, each with its audit event
        by `actor`, the gateway (their requesters may still resume them)."""

        def change(tx: Tx) -> tuple[None, list]:
            events = []
            for row in sql.started_exchanges(tx.conn):
                sql.end_exchange(tx.conn, row.name, "BROKEN")
                events.append(record.Event(
                    actor=actor, action="exchange.fetch.break",
                    resources=(row.name, str(AgencyName(row.requester)),
                               str(AgencyName(row.owner)), row.dataset_version,
                               row.grant_name),
                    reason="the gateway stopped while the fetch was running"))
            return None, events

        self._work.commit(change)

    def _complete(self, call: Call, plan: Plan,
                  delivered: Delivered) -> envelope_pb2.Envelope:
        """Mark the exchange COMPLETED and sign the receipt naming its audit leaf and what was
        delivered."""
        version = plan.version

        def change(tx: Tx) -> tuple[envelope_pb2.Envelope, list]:
            receipt = envelopes.seal(self._signing_key, envelopes.RECEIPT, exchange_pb2.Receipt(
                exchange=plan.name, requester=str(AgencyName(plan.requester)),
                owner=str(AgencyName(plan.grant.owner)), dataset_version=version.name,
                content_sha256=bytes.fromhex(version.content_sha256),
                content_size=version.content_size, grant=plan.grant.name,
                complete_time=times.to_timestamp(tx.now), audit_leaf_index=tx.next_leaf_index,
                audit_log_origin=self._origin, fields=plan.fields,
                delivered_sha256=delivered[0], delivered_size=delivered[1],
                carriers=self._carriers(call),
            ))
            if not sql.end_exchange(tx.conn, plan.name, "COMPLETED", when=times.to_text(tx.now),
                                    receipt=receipt.SerializeToString()):
                raise errors.FailedPrecondition(
                    f"{plan.name} ended while it was streamed: resume it",
                    reason="EXCHANGE_NOT_STARTED", exchange=plan.name)
            event = call.event("exchange.fetch.complete", resources=plan.resources(),
                               envelope_ids=(envelopes.envelope_id(receipt),),
                               reason=_delivering(plan))
            return receipt, [event]

        return self._work.commit(change, call.refusal).value


def broken_by(exc: BaseException) -> tuple[str, str]:
    """The reason and outcome a fetch's break event records for `exc`, which ended it: the
    refusal itself (REFUSED), the client going away (its stream closed, or the call found
    cancelled: errors.Cancelled), or a failure the wrapper logs and answers INTERNAL."""
    if isinstance(exc, GeneratorExit | errors.Cancelled):
        return "CANCELLED: the client ended the stream", record.ALLOWED
    if isinstance(exc, errors.GatewayError):
        return f"{exc.reason}: {exc.message}", record.REFUSED
    return f"INTERNAL: the gateway failed ({type(exc).__name__})", record.ALLOWED


def _offset_out_of_range(size: int) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"offset must be between 0 and the size delivered, {size}",
                                  reason="OFFSET_OUT_OF_RANGE", field="offset")


def _check_same_fields(reader: Any, exchange: Exchange, fields: list[str], version: str,
                       manifest: catalog_pb2.Manifest, now: str) -> None:
    """A resume continues the bytes the exchange delivered so far: refused when the grant it
    now runs under projects other fields than the one it started under."""
    started = sql.get_grant(reader, exchange.grant_name, now)
    if started is not None and _projection(started, version, manifest) != fields:
        raise errors.FailedPrecondition(
            f"{exchange.name} delivered other fields than your grant now gives: start a new"
            " fetch", reason="EXCHANGE_FIELDS_CHANGED", exchange=exchange.name)


def _parse(dataset: str) -> tuple[DatasetName, str]:
    """(dataset name, version name or "") of a dataset or version resource name."""
    version = VersionName.match(dataset)
    if version is not None:
        return version.dataset, dataset
    name = DatasetName.match(dataset)
    if name is not None:
        return name, ""
    raise errors.InvalidArgument(
        "dataset must be agencies/{agency}/datasets/{dataset}[/versions/{version}]",
        field="dataset")


def _resumable(reader: Any, requester: str, name: str) -> Exchange:
    if ExchangeName.parse(name, "exchange").agency != requester:
        raise errors.PermissionDenied(f"{name} is not one of your exchanges",
                                      reason="NOT_A_PARTY", exchange=name)
    row = sql.get_exchange(reader, name)
    if row is None:
        raise errors.NotFound(f"exchange {name} does not exist", exchange=name)
    if row.state == "COMPLETED":
        raise _completed(name)
    return row


def _completed(name: str) -> errors.FailedPrecondition:
    return errors.FailedPrecondition(f"{name} completed already: start a new fetch",
                                     reason="EXCHANGE_COMPLETED", exchange=name)


def _stricter(grants: list[Grant], dataset: str, terms: Dataset | Version,
              version: str = "") -> errors.FailedPrecondition:
    """GRANT_TERMS_STRICTER for `version` (or the latest version of `dataset`), published under
    `terms` (its version or dataset) that none of the requester's `grants` covers; the terms
    are named only to a caller that may see them. It names the way on: an access request
    naming that version, whose terms its owner then decides on."""
    grant = grants[0]
    seen = catalog.visible_under(grants, terms)
    version = version if seen else ""  # a hidden latest version: neither its number nor terms
    said: dict[str, Any] = {"version": version} if version else {}
    named = ""
    ask = "request access to the dataset again"
    if seen:
        number = terms.version if version else terms.latest_version
        said.update(terms=_terms(terms.classification, policy.sharing_type(terms)),
                    grant_terms=_terms(grant.max_classification, grant.max_sharing_type),
                    request_version=number)
        named = f" ({said['terms']}; it covers {said['grant_terms']})"
        ask = (f"request access to version {number} (govshare agency request --version {number}"
               " / AccessRequestStatement.version)")
    return errors.FailedPrecondition(
        f"{version or f'the latest version of {dataset}'} was published under stricter terms"
        f" than your grant {grant.name} covers{named}: a grant opens only versions whose"
        f" terms are no stricter than those it was given under; {ask} so that its owner decides"
        " on its terms", reason="GRANT_TERMS_STRICTER", grant=grant.name, dataset=dataset,
        **said)


def _terms(classification: str, sharing_type: str) -> str:
    return f"{classification} and {sharing_type}"


def _manifest(signed: bytes) -> catalog_pb2.Manifest:
    """The manifest inside a stored signed manifest (its signature was checked at publish)."""
    return catalog_pb2.Manifest.FromString(envelope_pb2.Envelope.FromString(signed).payload)


def _projection(grant: Grant, version: str, manifest: catalog_pb2.Manifest) -> list[str]:
    """The fields to project `version` onto under `grant` (empty: the whole content). A grant
    naming fields always gets a projection, checked against the publisher's column digests,
    so columns the content holds beyond its schema never reach it; without digests nothing
    shows which bytes are those fields, so the version is refused."""
    granted = json.loads(grant.fields)
    if not granted:
        return []
    schema = [field.name for field in manifest.schema]
    projected = [name for name in schema if name in granted]
    if schema and manifest.schema[0].values_sha256:  # digests for all fields, or none
        if projected:
            return projected
        raise errors.FailedPrecondition(  # another version's fields: an older schema, say
            f"{grant.name} covers the fields {', '.join(granted)}, and {version} holds none"
            " of them: fetch a version that does", reason="GRANT_FIELDS_ABSENT",
            grant=grant.name, version=version)
    extra = [name for name in schema if name not in granted]
    holds = ("declares no schema" if not schema else "carries no column digests" if not extra
             else f"also holds {', '.join(extra)} and carries no column digests")
    raise errors.FailedPrecondition(
        f"{grant.name} covers only the fields {', '.join(granted)}, but {version} {holds},"
        " so those fields cannot be delivered on their own, verifiably. The publisher must"
        " republish it with column digests (the SDK adds them for CSV and JSON Lines content"
        " with a schema), or the grantee ask for the whole dataset (naming no fields)",
        reason="GRANT_FIELDS_NARROWER", grant=grant.name, version=version,
        fields=",".join(granted))


def _altered(version: Version) -> errors.DataLoss:
    return errors.DataLoss(f"the stored content of {version.name} no longer matches its"
                           " SHA-256 or size; the operator must restore it from a backup",
                           version=version.name)


def _delivering(plan: Plan) -> str:
    """What the fetch delivers, as its audit events say it."""
    return f"fields {','.join(plan.fields)}" if plan.fields else "the whole content"


def _first_message(plan: Plan) -> exchange_pb2.FetchDatasetResponse:
    return exchange_pb2.FetchDatasetResponse(start=exchange_pb2.FetchStart(
        exchange=plan.name, dataset_version=plan.version.name,
        signed_manifest=envelope_pb2.Envelope.FromString(plan.version.signed_manifest),
        grant=plan.grant.name, offset=plan.offset, fields=plan.fields,
    ))


Delivered = tuple[bytes, int]
"""(SHA-256, size) of what a fetch delivered, as its receipt binds them."""


def _columns_mismatch(plan: Plan, why: str) -> errors.DataLoss:
    return errors.DataLoss(
        f"the fields {', '.join(plan.fields)} of {plan.version.name} {why}: its publisher"
        " must republish it", reason="COLUMNS_MISMATCH", version=plan.version.name)


def _from(blocks: Iterable[bytes], offset: int, hasher: StreamHasher,
          size: int) -> Iterator[bytes]:
    """The bytes of `blocks` from `offset` in chunks of at most `size`, hashing all of them."""
    for block in blocks:
        skip = max(0, offset - hasher.size)
        hasher.update(block)
        if not skip and len(block) <= size:  # the usual case: blocks are smaller than chunks
            yield block
            continue
        view = memoryview(block)[skip:]
        for start in range(0, len(view), size):
            yield bytes(view[start:start + size])


