"""The domain's records as storage reads and writes them: frozen dataclasses, one per table.

Storage (gateway.storage) is the only code that builds them from SQL rows and writes them back;
everything above reads attributes, and a changed copy is `dataclasses.replace`. Field names are
the column names, which are already the domain's names. Values are as stored: agencies by id,
enums by their short names (`govshare.enums`), JSON text where the column holds JSON (decoded
only by the few readers that need it), and times as RFC 3339 text (`govshare.times.to_text`):
the list paths render many rows, and text compares in time order as it is, so converting on
every read would only be spent again when a reply turns it into a Timestamp.

`reply_bytes` bounds what a record takes in a list reply (`gateway.paging` stops a page before
the reply would pass the message limit): signed bytes count twice, as a reply carries them both
signed and decoded, and text counts as UTF-8.

This module imports nothing of gateway's own: it sits under storage.
"""

from __future__ import annotations

from dataclasses import dataclass

_FRAMING = 128
"""Bytes a reply item may add around its values: field tags, lengths, enums, numbers and
Timestamps, and the "agencies/" prefix of agency names rendered from ids."""


def _utf8(*texts: str | None) -> int:
    return sum(len(text.encode()) for text in texts if text)


@dataclass(frozen=True, slots=True)
class Agency:
    """An agency in the directory (table `agencies`)."""

    id: str
    display_name: str
    region_code: str
    signing_certificate_pem: str
    signing_key_id: str
    state: str
    """ACTIVE or SUSPENDED."""
    suspend_reason: str
    create_time: str
    update_time: str
    previous_signing_certificates: str = "[]"
    """JSON array of {certificate_pem, key_id, retire_time}, oldest first."""
    network_member: str = ""
    """"" for an agency of this gateway; else the member gateway it was replicated from (table
    `replica_agencies`; not a column of `agencies`)."""

    @property
    def reply_bytes(self) -> int:
        return _FRAMING + _utf8(self.id, self.display_name, self.region_code,
                                self.signing_certificate_pem, self.signing_key_id,
                                self.suspend_reason, self.previous_signing_certificates)


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset with its latest version's metadata (table `datasets`) and that version's
    signed manifest (read with it, stored with the version)."""

    name: str
    publisher: str
    """Agency id."""
    region_code: str
    latest_version: int
    state: str
    """ACTIVE or WITHDRAWN."""
    withdraw_reason: str
    classification: str
    sharing_type: str
    title: str
    abstract: str
    tags: str
    """The manifest's tags joined by spaces (the dataset_tags rows hold them one by one)."""
    field_names: str
    """The schema's field names joined by spaces."""
    create_time: str
    update_time: str
    signed_manifest: bytes = b""
    """The latest version's serialised Envelope; not written with the dataset."""
    seq: int = 0
    """Position in the catalog, newest highest: the list order and page position (0 until
    stored)."""
    network_member: str = ""
    """"" for a dataset of this gateway; else the member gateway it was replicated from (table
    `replica_datasets`, whose `seq` numbers replicas apart; not a column of `datasets`)."""

    @property
    def terms(self) -> tuple[str, int, str, str]:
        """What an access decision on the dataset depends on (state, latest version, sharing
        type, classification), as `storage.catalog.sharing_terms` reads it again."""
        return (self.state, self.latest_version, self.sharing_type, self.classification)

    @property
    def reply_bytes(self) -> int:
        return _FRAMING + 2 * len(self.signed_manifest) + _utf8(
            self.name, self.publisher, self.region_code, self.withdraw_reason)


@dataclass(frozen=True, slots=True)
class NetworkChange:
    """One change of this gateway's directory or catalog that the other members pull (table
    `network_changes`, joined): the agency or the shared dataset as it is now, or, for a
    dataset no longer shared (neither agency nor dataset), only its replication id."""

    position: int
    agency: Agency | None = None
    dataset: Dataset | None = None
    replication_id: str = ""
    """A dataset's random id for replication (`network_datasets`), never derived from its name."""

    @property
    def reply_bytes(self) -> int:
        return _FRAMING + (self.agency.reply_bytes if self.agency else 0) + (
            self.dataset.reply_bytes if self.dataset else 0) + len(self.replication_id)


@dataclass(frozen=True, slots=True)
class Version:
    """One published version of a dataset (table `dataset_versions`)."""

    name: str
    dataset: str
    version: int
    signed_manifest: bytes
    content_sha256: str
    """Hex."""
    content_size: int
    create_time: str
    audit_leaf_index: int
    classification: str
    sharing_type: str

    @property
    def reply_bytes(self) -> int:
        return _FRAMING + 2 * len(self.signed_manifest) + _utf8(self.name)


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """An access request (table `access_requests`)."""

    name: str
    requester: str
    """Agency id."""
    owner: str
    """Agency id of the dataset's owner."""
    dataset: str
    request_id: str
    statement_digest: str
    signed_statement: bytes
    state: str
    """As written: PENDING, APPROVED, DENIED or WITHDRAWN."""
    state_reason: str
    decide_deadline: str | None
    signed_decision: bytes | None
    grant_name: str | None
    create_time: str
    decide_time: str | None
    seq: int = 0
    """Position, newest highest: the list order and page position (0 until stored)."""
    effective_state: str = ""
    """The state as read at a time: an APPROVED request whose grant has expired reads EXPIRED
    (empty in a request not read back yet, whose state is its effective state)."""
    member: str | None = None
    """The member gateway holding the request, for one this gateway carried there for its
    requester (a copy, as that member last answered); None for this gateway's own."""

    @property
    def current_state(self) -> str:
        return self.effective_state or self.state

    def overdue_at(self, now: str) -> bool:
        """Whether, at `now` (RFC 3339 text, as stored), the request still waits for its owner's
        decision past its deadline (storage's overdue_only filter asks the same in SQL)."""
        return (self.current_state == "PENDING" and self.decide_deadline is not None
                and self.decide_deadline < now)

    @property
    def reply_bytes(self) -> int:
        return (_FRAMING + 2 * len(self.signed_statement) + len(self.signed_decision or b"")
                + _utf8(self.name, self.requester, self.owner, self.dataset, self.state_reason,
                        self.grant_name))


@dataclass(frozen=True, slots=True)
class Grant:
    """A grant of access (table `grants`)."""

    name: str
    grantee: str
    """Agency id."""
    owner: str
    """Agency id."""
    dataset: str
    access_request: str
    fields: str
    """JSON array of the field names covered; [] covers every field."""
    state: str
    """As written: ACTIVE or REVOKED."""
    signed_statement: bytes
    create_time: str
    expire_time: str
    revoke_time: str | None
    revoke_reason: str
    max_classification: str
    """The terms it was given under: it opens no version published under stricter ones."""
    max_sharing_type: str
    seq: int = 0
    """Position, newest highest: the list order and page position (0 until stored)."""
    effective_state: str = ""
    """The state as read at a time: an ACTIVE grant past its expire_time reads EXPIRED (empty
    in a grant not read back yet, whose state is its effective state)."""
    member: str | None = None
    """The member gateway that gave the grant, for a copy kept for its grantee; None for this
    gateway's own."""

    @property
    def current_state(self) -> str:
        return self.effective_state or self.state

    @property
    def reply_bytes(self) -> int:
        return _FRAMING + len(self.signed_statement) + _utf8(
            self.name, self.grantee, self.owner, self.dataset, self.access_request, self.fields,
            self.revoke_reason)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One fetch of a dataset version under a grant (table `exchanges`)."""

    name: str
    requester: str
    """Agency id."""
    owner: str
    """Agency id."""
    dataset_version: str
    grant_name: str
    state: str
    """STARTED, COMPLETED or BROKEN."""
    create_time: str
    complete_time: str | None = None
    receipt: bytes | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A WatchEvents notification (table `events`): for one agency id (`recipient`), or, with
    no recipient, for those the dataset's event concerns."""

    recipient: str | None
    type: str
    resource: str
    dataset: str
    actor: str
    summary: str
    create_time: str
    seq: int = 0
    """Position, oldest lowest: the watch cursor (0 until stored)."""


@dataclass(frozen=True, slots=True)
class AuditLeaf:
    """A leaf of the audit log (table `audit_leaves`): the record the tree commits to, and the
    columns listings filter by (copied from the record)."""

    leaf_index: int
    record: bytes
    create_time: str
    actor: str
    action: str
    outcome: str
    subjects: str
    """The record's subjects framed as "\\nname\\nname\\n" (storage.audit.frame)."""

    @property
    def reply_bytes(self) -> int:
        # The record goes once as bytes and once decoded into fields, which take no more than
        # their JSON; the actor may show again as an agency name.
        return _FRAMING + 2 * len(self.record) + _utf8(self.actor)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed checkpoint of the audit log (table `checkpoints`)."""

    tree_size: int
    root_hash: bytes
    note: bytes
    """The signed note (C2SP checkpoint)."""
    create_time: str


@dataclass(frozen=True, slots=True)
class WitnessedLog:
    """A log this gateway witnesses, as last cosigned (table `witnessed_logs`)."""

    origin: str
    tree_size: int
    root_hash: bytes
    checkpoint: bytes
    """The signed note cosigned last."""
    update_time: str
    cosignature: str = ""
    """This witness's cosignature line of `checkpoint` ("" for a row cosigned before the lines
    were kept)."""

    @property
    def reply_bytes(self) -> int:
        """At most the bytes it takes in a ListWitnessedCheckpoints reply."""
        return len(self.origin) + len(self.checkpoint) + len(self.cosignature) + 32


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two statements one key signed that cannot both be true, as the network showed them to
    this gateway (table `network_evidence`): two checkpoints of one log that are not one
    history, or two network configurations of one version."""

    kind: str
    """FORK_SAME_SIZE, FORK_NOT_CONSISTENT or CONFIGURATION_EQUIVOCATION."""
    subject: str
    """The log's checkpoint origin, or "networkConfiguration"."""
    member: str
    """The member whose log it is ("" for a configuration: its signer is the authority)."""
    first: bytes
    """The first statement (a signed note; a SignedNetworkConfiguration)."""
    first_from: str
    """Who showed it: the member id of the witness that cosigned it, or of this gateway."""
    second: bytes
    second_from: str
    pair: str
    """What identifies the pair, so that it is kept once."""
    reason: str
    """What the two statements say, and why they cannot both be true."""
    create_time: str


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A witness's cosignature of one of this gateway's checkpoints (table `cosignatures`)."""

    origin: str
    """The checkpoint's origin: a log that moved to a new one has checkpoints of both."""
    tree_size: int
    witness: str
    """The member id of the witness."""
    line: str
    """The signature line, "— <name> <base64>\\n", as the witness answered it."""
    create_time: str
