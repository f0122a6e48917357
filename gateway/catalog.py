"""The catalog: agencies publish signed, versioned datasets, find each other's, withdraw their own.

Names: datasets and versions are named as `govshare.names` parses them, so names never carry
path characters, NUL or surprises.

Visibility: PUBLIC and INTERNAL metadata is visible to every registered agency; CONFIDENTIAL
metadata only to its publisher and to agencies holding an ACTIVE, unexpired grant on it given
under CONFIDENTIAL terms (a grant given while the latest version was PUBLIC or INTERNAL reveals
no CONFIDENTIAL version, older or newer); staff (admin, auditor) see all metadata.
Permission comes before existence: an agency that could not see a dataset of another publisher
gets PERMISSION_DENIED whether it exists or not, so hidden datasets cannot be discovered by
probing names; NOT_FOUND goes only to those who could see it.
Each version is visible by its own classification: a CONFIDENTIAL version stays hidden from
those agencies after a later version is published PUBLIC. A dataset is visible by its latest
version's classification.

Sizes: every reply must fit the gateway's message limit (`limits.max_message_bytes`). A reply
holds each manifest twice (decoded, and signed), so a signed manifest may take at most a
quarter of the limit (`max_manifest_bytes`), and list pages stop early when the next item would
not fit.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from gateway import paging
from gateway.blobs import BlobStore, Upload
from gateway.config import ExchangeConfig, LimitsConfig
from gateway.context import Call
from gateway.identity import AGENCY
from gateway.models import Dataset, Event, Grant, Version
from gateway.paging import PageTokens
from gateway.readcache import ReadCache
from gateway.statements import StatementOpener
from gateway.storage import Database
from gateway.storage import catalog as sql
from gateway.storage import events as events_sql
from gateway.text import check_reason, check_text
from gateway.unit_of_work import Tx, UnitOfWork
from gateway.v1 import catalog_pb2, envelope_pb2
from govshare import columns, envelopes, errors, times
from govshare.enums import check_enum, enum_name, optional_enum
from govshare.names import ID_PATTERN, AgencyName, DatasetName


class DatasetCache(ReadCache):
    """Dataset rows (with the latest signed manifest, a few KiB each) by name: every access
    request and GetDataset reads one; publishing and withdrawing invalidate it."""

    CAPACITY = 4096

    def __init__(self, db: Any):
        super().__init__(db, self.CAPACITY)

    def dataset(self, name: str) -> Dataset | None:
        return self.get(("name", name), sql.get_dataset)

    def changed(self, name: str) -> None:
        """Call once a change to dataset `name` has committed."""
        self.invalidate(("name", name))


ALL_PUBLISHERS = "agencies/-"

MAX_TITLE = 200
MAX_ABSTRACT = 4000
MAX_SCHEMA_FIELDS = 1000
MAX_FIELD_NAME = 64
MAX_FIELD_DESCRIPTION = 500
MAX_CONDITIONS = 4000
MAX_LEGAL_BASIS = 4000
MAX_TAGS = 20
MAX_TAG = 40
MAX_QUERY = 500

PUBLISHED = "DATASET_VERSION_PUBLISHED"
WITHDRAWN = "DATASET_WITHDRAWN"
REQUEST_WITHDRAWN = "ACCESS_REQUEST_WITHDRAWN"


# -- manifest validation --------------------------------------------------------------------------


def max_manifest_bytes(limits: LimitsConfig) -> int:
    """The largest encoded signed manifest accepted: a quarter of the message limit (272 KiB by
    default), so a reply holding one version twice, decoded and signed, always fits."""
    return limits.max_message_bytes // 4


def check_manifest_size(envelope: envelope_pb2.Envelope, limits: LimitsConfig) -> None:
    size, largest = envelope.ByteSize(), max_manifest_bytes(limits)
    if size > largest:
        raise errors.InvalidArgument(
            f"the signed manifest is {size} bytes; the gateway accepts at most {largest}:"
            " shorten field descriptions, the abstract or the schema",
            reason="MANIFEST_TOO_LARGE", field="manifest", size=size, limit=largest,
        )


def validate_manifest(
    manifest: catalog_pb2.Manifest, *, publisher: str, limits: LimitsConfig, now: Any,
    clock_skew: timedelta,
) -> None:
    """Check every field of a signed manifest; the first failure raises, naming the field.

    `publisher` is the caller's agency id: the dataset must be under it (PERMISSION_DENIED).
    A declared size above `limits.max_dataset_bytes` is RESOURCE_EXHAUSTED.
    """
    owner = DatasetName.parse(manifest.dataset, "manifest.dataset").owner
    if owner.agency != publisher:
        raise errors.PermissionDenied(
            f"manifest.dataset is under {owner}; agency {publisher} may publish"
            f" only under {AgencyName(publisher)}",
            reason="NOT_PUBLISHER", field="manifest.dataset", publisher=publisher,
        )
    if manifest.version < 1:
        raise errors.InvalidArgument("manifest.version must be 1 or more",
                                     field="manifest.version")
    check_text(manifest.title, "manifest.title", MAX_TITLE, required=True)
    check_text(manifest.abstract, "manifest.abstract", MAX_ABSTRACT)
    check_enum(catalog_pb2.MediaType, manifest.media_type, "manifest.media_type")
    _check_schema(manifest.schema)
    _check_columns(manifest)
    check_enum(catalog_pb2.Classification, manifest.classification, "manifest.classification")
    check_enum(catalog_pb2.SharingType, manifest.sharing_type, "manifest.sharing_type")
    check_text(manifest.sharing_conditions, "manifest.sharing_conditions", MAX_CONDITIONS)
    check_text(manifest.legal_basis, "manifest.legal_basis", MAX_LEGAL_BASIS)
    check_enum(catalog_pb2.UpdateCycle, manifest.update_cycle, "manifest.update_cycle")
    _check_tags(manifest.tags)
    if len(manifest.content_sha256) != 32:
        raise errors.InvalidArgument("manifest.content_sha256 must be the 32-byte SHA-256",
                                     field="manifest.content_sha256")
    _check_size(manifest.content_size, limits.max_dataset_bytes)
    _check_create_time(manifest, now, clock_skew)


def _check_schema(schema: Iterable[catalog_pb2.SchemaField]) -> None:
    schema = list(schema)
    if len(schema) > MAX_SCHEMA_FIELDS:
        raise errors.InvalidArgument(f"manifest.schema may have at most {MAX_SCHEMA_FIELDS}"
                                     " fields", field="manifest.schema")
    seen: set[str] = set()
    for index, item in enumerate(schema):
        field = f"manifest.schema[{index}]"
        check_text(item.name, f"{field}.name", MAX_FIELD_NAME, required=True)
        if item.name in seen:
            raise errors.InvalidArgument(f"{field}.name {item.name!r} is repeated",
                                         field=f"{field}.name")
        seen.add(item.name)
        check_enum(catalog_pb2.FieldType, item.type, f"{field}.type")
        check_text(item.description, f"{field}.description", MAX_FIELD_DESCRIPTION)
        check_enum(catalog_pb2.Sensitivity, item.sensitivity, f"{field}.sensitivity")


def _check_columns(manifest: catalog_pb2.Manifest) -> None:
    """Column digests: on CSV or JSON Lines only, on every schema field or none, 32 bytes each,
    with a row count that is not negative (their values are checked when a projection is
    served, not here: parsing every upload would cost more than storing it)."""
    carried = [bool(item.values_sha256) for item in manifest.schema]
    if not any(carried):
        if manifest.row_count:
            raise errors.InvalidArgument("manifest.row_count is set only with column digests"
                                         " (schema values_sha256)", field="manifest.row_count")
        return
    if not columns.is_tabular(manifest.media_type):
        raise errors.InvalidArgument(
            "column digests (manifest.schema[].values_sha256) are for CSV and JSON Lines content"
            " only: drop them or publish as one of those", field="manifest.schema")
    for index, item in enumerate(manifest.schema):
        if len(item.values_sha256) != 32:
            field = f"manifest.schema[{index}].values_sha256"
            raise errors.InvalidArgument(
                f"{field} must be the 32-byte column digest: give one for every schema field"
                " or none", field=field)
    if manifest.row_count < 0:
        raise errors.InvalidArgument("manifest.row_count must not be negative",
                                     field="manifest.row_count")


def _check_tags(tags: Iterable[str]) -> None:
    tags = list(tags)
    if len(tags) > MAX_TAGS:
        raise errors.InvalidArgument(f"manifest.tags may have at most {MAX_TAGS} tags",
                                     field="manifest.tags")
    for index, tag in enumerate(tags):
        check_text(tag, f"manifest.tags[{index}]", MAX_TAG, required=True)
    if len(set(tags)) != len(tags):
        raise errors.InvalidArgument("manifest.tags must not repeat a tag", field="manifest.tags")


def _check_size(size: int, largest: int) -> None:
    if size < 0:
        raise errors.InvalidArgument("manifest.content_size must not be negative",
                                     field="manifest.content_size")
    if size > largest:
        raise errors.ResourceExhausted(
            f"manifest.content_size {size} exceeds the gateway's limit of {largest} bytes",
            reason="DATASET_TOO_LARGE", field="manifest.content_size", size=size, limit=largest,
        )


def _check_create_time(manifest: catalog_pb2.Manifest, now: Any, skew: timedelta) -> None:
    if not manifest.HasField("create_time"):
        raise errors.InvalidArgument("manifest.create_time is required",
                                     field="manifest.create_time")
    if abs(times.from_timestamp(manifest.create_time, "manifest.create_time") - now) > skew:
        raise errors.InvalidArgument(
            f"manifest.create_time is more than {int(skew.total_seconds())} s from the gateway's"
            " clock; sign a fresh manifest", reason="CLOCK_SKEW", field="manifest.create_time",
        )


def _check_version(dataset: Dataset | None, manifest: catalog_pb2.Manifest) -> None:
    """The version must be new and above the latest; a withdrawn dataset takes none."""
    if dataset is None:
        return
    if dataset.state == sql.WITHDRAWN:
        raise errors.FailedPrecondition(f"{dataset.name} is withdrawn and takes no new versions",
                                        reason="DATASET_WITHDRAWN", dataset=dataset.name)
    latest = dataset.latest_version
    if manifest.version == latest:
        raise errors.AlreadyExists(
            f"version {latest} of {dataset.name} exists; publish version {latest + 1}",
            reason="VERSION_EXISTS", field="manifest.version", latest_version=latest,
        )
    if manifest.version < latest:
        raise errors.FailedPrecondition(
            f"manifest.version must be greater than the latest version {latest}",
            reason="VERSION_NOT_INCREASING", field="manifest.version", latest_version=latest,
        )


def _check_sharing(manifest: catalog_pb2.Manifest) -> None:
    if (manifest.sharing_type == catalog_pb2.SHARING_TYPE_NOT_SHARED
            and not manifest.legal_basis.strip()):
        raise errors.InvalidArgument(
            "manifest.legal_basis is required for NOT_SHARED datasets: name the law or"
            " regulation that forbids sharing", reason="LEGAL_BASIS_REQUIRED",
            field="manifest.legal_basis",
        )


# -- the catalog: publishing, finding, withdrawing ------------------------------------------------


class Catalog:
    """The datasets agencies publish: publishing, finding (by the visibility rules above) and
    withdrawing."""

    def __init__(self, db: Database, work: UnitOfWork, datasets: DatasetCache, blobs: BlobStore,
                 statements: StatementOpener, limits: LimitsConfig, exchange: ExchangeConfig,
                 page_tokens: PageTokens):
        self._db = db
        self._work = work
        self._datasets = datasets
        self._blobs = blobs
        self._statements = statements
        self._limits = limits
        self._clock_skew = timedelta(seconds=exchange.clock_skew_seconds)
        self._page_tokens = page_tokens

    def publish(
        self, call: Call, envelope: envelope_pb2.Envelope, chunks: Iterable[bytes]
    ) -> tuple[Version, bool]:
        """Verify a signed manifest, receive its content, store the version.

        Returns the version and whether the publisher itself had already published the same
        content (content other agencies hold counts as new: that is theirs to know). The checks run
        in order (manifest size, signature, fields, version, legal basis, then the bytes); any
        refusal leaves no blob, temp file or row behind, only the refusal's audit event, which names
        the dataset the manifest claims (when that is a valid dataset name) even if the manifest
        turns out forged.
        """
        call.resources = _claimed_dataset(envelope)
        check_manifest_size(envelope, self._limits)
        manifest = self._statements.open_signed(call, envelope, envelopes.MANIFEST,
                                          "manifest")
        validate_manifest(
            manifest, publisher=call.caller.identity.id, limits=self._limits,
            now=call.time, clock_skew=self._clock_skew,
        )
        _check_version(sql.get_dataset(self._db.reader(), manifest.dataset), manifest)
        _check_sharing(manifest)
        with self._blobs.upload(manifest.content_size) as upload:
            _receive(upload, chunks, manifest, self._limits.max_chunk_bytes)
            try:
                return self._work.commit(self._store_version(call, envelope, manifest, upload),
                                          call.refusal).value
            except BaseException:
                if upload.placed:  # moved into place, but its row never committed
                    self._remove_unnamed(call.caller.identity.id, upload.hasher.hexdigest())
                raise
            finally:
                self._datasets.changed(manifest.dataset)

    def _remove_unnamed(self, publisher: str, digest: str) -> None:
        """Remove a blob a failed change moved into the publisher's namespace, unless a row names
        it by now (another of the publisher's versions with the same content; other agencies'
        content is in their own namespaces, never looked at). Decided in the committer, where no
        change can find the blob between the check and the removal; a redone batch does not decide
        again (it would remove a blob a later change of the batch moved into place). If even this
        fails, start-up recovery removes the blob."""
        decided: list[bool] = []

        def change(tx: Tx) -> tuple[None, list]:
            if not decided:
                decided.append(not sql.publisher_named(tx.conn, publisher, digest))
                if decided[0]:
                    self._blobs.remove(publisher, digest)
            return None, []

        with contextlib.suppress(errors.GatewayError):
            self._work.commit(change)

    def _store_version(
        self, call: Call, envelope: envelope_pb2.Envelope,
        manifest: catalog_pb2.Manifest, upload: Upload,
    ) -> Any:
        """The change that records a version: rows, tags, watch event, then the blob moved into
        place last, so a refused change never leaves content behind. It answers whether the
        publisher's own versions already named the content, asked before this one is added."""
        name = manifest.dataset
        region_code = call.agency.region_code if call.agency else ""
        version = str(DatasetName.parse(name, "manifest.dataset").version(manifest.version))

        def change(tx: Tx) -> tuple[tuple[Version, bool], list]:
            existing = sql.get_dataset(tx.conn, name)
            _check_version(existing, manifest)
            republished = sql.publisher_named(tx.conn, call.caller.identity.id,
                                              manifest.content_sha256.hex())
            when = times.to_text(tx.now)
            classification = enum_name(catalog_pb2.Classification, manifest.classification)
            sharing_type = enum_name(catalog_pb2.SharingType, manifest.sharing_type)
            sql.upsert_dataset(tx.conn, Dataset(
                name=name,
                publisher=call.caller.identity.id,
                region_code=region_code,
                latest_version=manifest.version,
                state=sql.ACTIVE,
                withdraw_reason="",
                classification=classification,
                sharing_type=sharing_type,
                title=manifest.title,
                abstract=manifest.abstract,
                tags=" ".join(manifest.tags),
                field_names=" ".join(field.name for field in manifest.schema),
                create_time=existing.create_time if existing else when,
                update_time=when,
            ), manifest.tags)
            row = Version(
                name=version,
                dataset=name,
                version=manifest.version,
                signed_manifest=envelope.SerializeToString(),
                classification=classification,
                sharing_type=sharing_type,
                content_sha256=manifest.content_sha256.hex(),
                content_size=manifest.content_size,
                create_time=when,
                audit_leaf_index=tx.next_leaf_index,
            )
            sql.insert_version(tx.conn, row)
            events_sql.insert_event(tx.conn, Event(
                recipient=None, type=PUBLISHED, resource=version, dataset=name,
                actor=call.caller.uri, summary=f"version {manifest.version} published",
                create_time=when))
            self._blobs.commit(call.caller.identity.id, upload)
            event = call.event(resources=(version, name),
                               envelope_ids=(envelopes.envelope_id(envelope),))
            return (row, republished), [event]

        return change

    def can_see(self, call: Call, dataset: Dataset) -> bool:
        """Whether the caller may see the metadata of `dataset`: staff always; agencies for
        PUBLIC/INTERNAL, their own, or with an active grant covering CONFIDENTIAL, unexpired at
        the time of the call."""
        return dataset.classification != "CONFIDENTIAL" or self.sees_confidential(call, dataset)

    def sees_confidential(self, call: Call, dataset: Dataset) -> bool:
        """Whether the caller may see the CONFIDENTIAL metadata of `dataset`: staff, its
        publisher, and agencies holding an active grant on it that covers CONFIDENTIAL,
        unexpired at the time of the call."""
        caller = call.caller
        if caller.kind != AGENCY or dataset.publisher == caller.identity.id:
            return True
        return sql.has_confidential_grant(self._db.reader(), caller.identity.id, dataset.name,
                                          times.to_text(call.time))

    def get(self, call: Call, name: str) -> Dataset:
        """GetDataset: the dataset `name` as `get_visible` finds it, or the copy of another
        member's dataset this gateway holds (every agency may see it: only such datasets are
        replicated), answered from its latest signed manifest, `network_member` naming the
        member."""
        return self._find(call, name, "name")

    def get_visible(self, call: Call, name: str, field: str = "name") -> Dataset:
        """The dataset `name` of this gateway if the caller may see it (withdrawn ones
        included).

        INVALID_ARGUMENT for a malformed name; PERMISSION_DENIED when an agency may not see it,
        whether or not it exists (permission before existence); NOT_FOUND otherwise, with
        reason DATASET_HELD_BY_MEMBER naming the member for another member's dataset listed
        here (its versions and events are at that member's gateway).
        """
        row = self._find(call, name, field)
        if row.network_member:
            raise errors.NotFound(
                f"{name} is a dataset of member gateway {row.network_member}, listed here"
                " from its latest signed manifest: ask that member's gateway for its versions"
                " and events", reason="DATASET_HELD_BY_MEMBER", dataset=name,
                network_member=row.network_member)
        return row

    def _find(self, call: Call, name: str, field: str) -> Dataset:
        """A dataset of this gateway the caller may see, or a replicated one; the refusal
        `get_visible` documents otherwise."""
        agency_id = DatasetName.parse(name, field).agency
        row = self._datasets.dataset(name)
        if row is not None and self.can_see(call, row):
            return row
        replica = None if row is not None else sql.get_replica_dataset(self._db.reader(), name)
        if replica is not None:
            return replica
        caller = call.caller
        if row is None and (caller.kind != AGENCY or caller.identity.id == agency_id):
            raise errors.NotFound(f"{name} does not exist", reason="DATASET_NOT_FOUND",
                                  dataset=name)
        raise errors.PermissionDenied(
            f"{name} does not exist or is not visible to you: CONFIDENTIAL datasets are visible"
            " only to their publisher and to agencies holding an active grant",
            reason="DATASET_NOT_VISIBLE", dataset=name,
        )

    def list_datasets(
        self, call: Call, request: catalog_pb2.ListDatasetsRequest,
    ) -> paging.Page[Dataset]:
        """The page of datasets `request` asks for that the caller may see (a page stops at
        page_size items or when the next would not fit the reply)."""
        size = paging.page_size(request.page_size)
        where = sql.DatasetFilter(
            publisher=_publisher_filter(request.parent),
            region_prefix=_region_prefix(request.region_code),
            tag=request.tag,
            classification=optional_enum(catalog_pb2.Classification, request.classification,
                                          "classification"),
            sharing_type=optional_enum(catalog_pb2.SharingType, request.sharing_type,
                                        "sharing_type"),
            fts_query=fts_query(request.query),
            dataset_id=_dataset_id_filter(request.dataset_id),
            show_withdrawn=request.show_withdrawn,
            viewer=call.caller.identity.id if call.caller.kind == AGENCY else None,
            now=times.to_text(call.time),
        )
        found = sql.list_datasets(self._db.reader(), where,
                                  before=self._dataset_position(request), limit=size + 1)
        return paging.page(self._page_tokens, self._limits, request, found, size,
                           sql.dataset_position)

    def list_versions(
        self, call: Call, request: catalog_pb2.ListDatasetVersionsRequest,
    ) -> paging.Page[Version]:
        """A page of a visible dataset's versions the caller may see, newest first, filled as
        `list_datasets` does."""
        call.resources = [request.parent]
        dataset = self.get_visible(call, request.parent, "parent")
        size = paging.page_size(request.page_size)
        found = sql.list_versions(self._db.reader(), dataset.name,
                                  before=self._position(request), limit=size + 1,
                                  confidential=self.sees_confidential(call, dataset))
        return paging.page(self._page_tokens, self._limits, request, found, size,
                           _version_number)

    def _dataset_position(self, request: Any) -> sql.DatasetPosition | None:
        position = self._page_tokens.decode(request.page_token, request)
        if position is None:
            return None
        if not (isinstance(position, list) and len(position) == 3
                and [type(part) for part in position] == [str, str, int]):
            raise errors.InvalidArgument("page_token is not valid for this request",
                                         reason="INVALID_PAGE_TOKEN", field="page_token")
        return (position[0], position[1], position[2])

    def _position(self, request: Any) -> int | None:
        position = self._page_tokens.decode(request.page_token, request)
        if position is not None and not isinstance(position, int):
            raise errors.InvalidArgument("page_token is not valid for this request",
                                         reason="INVALID_PAGE_TOKEN", field="page_token")
        return position

    def withdraw(self, call: Call, name: str, reason: str) -> Dataset:
        """Withdraw a dataset (owner only): it leaves default listings and takes no new access
        requests; pending requests of agencies that may see it become WITHDRAWN (the others wait
        for the owner's decision, see storage.catalog.withdraw_pending_requests); its versions stay
        retrievable."""
        owner = DatasetName.parse(name).owner
        call.resources = [name]
        check_reason(reason)
        if owner.agency != call.caller.identity.id:
            raise errors.PermissionDenied(f"only {owner} may withdraw {name}",
                                          reason="NOT_OWNER", dataset=name)

        def change(tx: Tx) -> tuple[Dataset, list]:
            row = sql.get_dataset(tx.conn, name)
            if row is None:
                raise errors.NotFound(f"{name} does not exist", reason="DATASET_NOT_FOUND",
                                      dataset=name)
            if row.state == sql.WITHDRAWN:
                raise errors.FailedPrecondition(f"{name} is already withdrawn",
                                                reason="DATASET_WITHDRAWN", dataset=name)
            when = times.to_text(tx.now)
            sql.withdraw_dataset(tx.conn, name, reason, when)
            closed = sql.withdraw_pending_requests(tx.conn, name, when)
            events_sql.insert_event(tx.conn, Event(
                recipient=None, type=WITHDRAWN, resource=name, dataset=name,
                actor=call.caller.uri, summary=f"withdrawn: {reason}", create_time=when))
            for request in closed:  # requesters hold no grant, so the event above misses them
                events_sql.insert_event(tx.conn, Event(
                    recipient=request.requester, type=REQUEST_WITHDRAWN,
                    resource=request.name, dataset=name, actor=call.caller.uri,
                    summary=f"{name} was withdrawn ({reason}); your access request"
                            f" {request.name} is closed", create_time=when))
            event = call.event(
                reason=reason, resources=(name, *(request.name for request in closed)),
                agencies=tuple(dict.fromkeys(str(AgencyName(request.requester))
                                             for request in closed)))
            return sql.get_dataset(tx.conn, name), [event]

        try:
            return self._work.commit(change, call.refusal).value
        finally:
            self._datasets.changed(name)


# -- publishing -----------------------------------------------------------------------------------


def _claimed_dataset(envelope: envelope_pb2.Envelope) -> list[str]:
    """The dataset an envelope's manifest names, read before its signature is checked: what a
    refused publish claimed to be about, for its refusal event ([] when the payload is no
    manifest or names no valid dataset)."""
    claimed = envelopes.claimed(envelope, envelopes.MANIFEST)
    if claimed is None or DatasetName.match(claimed.dataset) is None:
        return []
    return [claimed.dataset]


def _receive(upload: Upload, chunks: Iterable[bytes], manifest: catalog_pb2.Manifest,
             max_chunk: int) -> None:
    """Stream chunks into the upload, stopping before more than the manifest declares; then
    make it durable and check its hash."""
    declared = manifest.content_size
    for chunk in chunks:
        if not 1 <= len(chunk) <= max_chunk:
            raise errors.InvalidArgument(f"chunks must be 1 to {max_chunk} bytes",
                                         reason="CHUNK_SIZE", field="chunk", limit=max_chunk)
        if upload.size + len(chunk) > declared:
            raise errors.InvalidArgument(
                f"the content is longer than manifest.content_size ({declared} bytes)",
                reason="CONTENT_SIZE_MISMATCH", field="chunk", declared=declared,
            )
        upload.write(chunk)
    if upload.size != declared:
        raise errors.DataLoss(
            f"the stream ended after {upload.size} of the {declared} bytes the manifest"
            " declares", reason="CONTENT_SIZE_MISMATCH", received=upload.size,
            declared=declared,
        )
    upload.finish()
    if upload.hasher.digest() != manifest.content_sha256:
        raise errors.DataLoss(
            "the content's SHA-256 differs from manifest.content_sha256",
            reason="CONTENT_HASH_MISMATCH", received=upload.hasher.hexdigest(),
            declared=manifest.content_sha256.hex(),
        )


# -- finding --------------------------------------------------------------------------------------


def visible_under(grants: list[Grant], terms: Dataset | Version) -> bool:
    """Whether an agency holding `grants` (its active grants on a dataset it does not own) may
    see the metadata of a version or dataset published under `terms`: the rule of `can_see`,
    for a caller whose grants are read already."""
    return terms.classification != "CONFIDENTIAL" or any(
        grant.max_classification == "CONFIDENTIAL" for grant in grants)


def _version_number(version: Version) -> int:
    return version.version


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression requiring every word of `text` as a prefix: words are quoted,
    so FTS5 syntax in user input is never interpreted. Chinese is indexed a character at a
    time (storage.catalog.search_text), so a run of Chinese characters becomes a phrase of
    adjacent characters: 医院 matches 广东省医院床位统计."""
    check_text(text, "query", MAX_QUERY)
    words = re.findall(r"\w+", text)
    if text.strip() and not words:
        raise errors.InvalidArgument("query must contain at least one word", field="query")
    return " AND ".join(f'"{sql.search_text(word).strip()}"*' for word in words)


def _publisher_filter(parent: str) -> str:
    if parent == ALL_PUBLISHERS:
        return ""
    publisher = AgencyName.match(parent)
    if publisher is None:
        raise errors.InvalidArgument(
            "parent must be agencies/{agency} or agencies/- for the whole catalog",
            field="parent",
        )
    return publisher.agency


def _dataset_id_filter(dataset_id: str) -> str:
    if dataset_id and not ID_PATTERN.fullmatch(dataset_id):
        raise errors.InvalidArgument(f"dataset_id must match {ID_PATTERN.pattern}",
                                     field="dataset_id")
    return dataset_id


def _region_prefix(code: str) -> str:
    """A province code matches its divisions: "440000" -> "44", "440300" -> "4403"."""
    if not code:
        return ""
    if not re.fullmatch(r"[1-9]\d{5}", code):
        raise errors.InvalidArgument("region_code must be a six-digit GB/T 2260 code",
                                     field="region_code")
    while code.endswith("00"):
        code = code[:-2]
    return code
