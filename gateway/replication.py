"""One network for all: what the members of a national network replicate from each other.

Each agency connects to its own region's gateway only, yet lists the whole network's agencies
and the datasets every agency may see. Each gateway keeps a copy of the other members' and
merges it into ListAgencies and ListDatasets (`storage.directory.list_agencies`,
`storage.catalog.list_datasets`), rather than asking every member at each call: search and
paging run on one local index with one page token, a member that is down leaves its last copy
(listed, and named as stale) instead of failing or holding the caller, and a list call costs the
same however many regions there are.

As a holder, `list_changes` serves the changes of its own directory and catalog after a
position (ListNetworkChanges, peers only). Only what every agency may see leaves the gateway:
its agencies, and the datasets whose latest version is PUBLIC or INTERNAL and not NOT_SHARED,
with their latest signed manifest and a random replication id; a dataset that stopped being so
goes as that id only, so that receivers drop their copy, and one never shared never goes at all
(not even as a position). Positions count in an epoch, the history of this database's changes:
a receiver that held another one replaces its copy of this gateway's (`apply`).

As a receiver, `apply` takes a member's changes only as the configuration and the signatures
allow: an agency of a region that member serves, whose signing certificate the national CA
issued to it, and not one of this gateway's own nor another member's; a dataset of an agency
replicated from that member, whose manifest its signing key signed, shared with every agency,
its metadata read from the signed manifest (a peer cannot invent or alter a dataset of an
agency). A refusal is audited (`replication.refused`, the member as actor): it is evidence of a
misbehaving member. Pulls themselves are not audited: a log recording its own polling would
never settle (docs/FEDERATION.md, "Witnesses").
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from datetime import datetime

from cryptography import x509
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from certs import ca as certs_ca
from certs.identity import Identity, identity_from_certificate
from gateway import paging, refusals
from gateway.config import LimitsConfig
from gateway.directory import serves
from gateway.federation import NetworkMembership
from gateway.models import Agency, Dataset, NetworkChange
from gateway.storage import Database
from gateway.storage import catalog as catalog_sql
from gateway.storage import directory as directory_sql
from gateway.storage import replica as sql
from gateway.unit_of_work import Tx, UnitOfWork
from gateway.v1 import catalog_pb2, directory_pb2, envelope_pb2, network_pb2, replication_pb2
from govshare import envelopes, errors, signing, times
from govshare.enums import enum_name
from govshare.names import AgencyName, DatasetName
from govshare.transparency import record

log = logging.getLogger("govshare.replication")

REFUSED = "replication.refused"
"""The audit action of a change a member sent that this gateway refused."""
MEMBER_REMOVED = "replication.member_removed"
"""The audit action of dropping what was taken from a member the configuration no longer
names."""
STALE_INTERVALS = 3
"""A member not reached within this many pull intervals is named stale in list replies."""
SHARED_CLASSIFICATIONS = ("PUBLIC", "INTERNAL")
MAX_AUDITED_REFUSALS = 20
"""Refusals of one member's round audited one by one; beyond them one summary per reason
counts the rest, so that a member sending thousands of junk changes grows the log by a few
leaves a round, not by thousands."""
MAX_WAITING = 10_000
"""Dataset changes of one member held, at most, until their publisher's change arrives."""
PUBLISHER_UNKNOWN = "REPLICATION_PUBLISHER_UNKNOWN"
REPLICATION_ID = re.compile(r"[0-9a-f]{32}")
"""A dataset's replication id: 16 random bytes in hex (migration 0017's network_datasets)."""


def shared_with_network(dataset: Dataset) -> bool:
    """Whether every agency of the network may see `dataset`'s metadata and ask for it: its
    latest version is PUBLIC or INTERNAL and not NOT_SHARED (the catalog's `can_see` for any
    agency)."""
    return (dataset.classification in SHARED_CLASSIFICATIONS
            and dataset.sharing_type != "NOT_SHARED")


class ChangeRefused(Exception):
    """A member's change this gateway does not take; `reason` is the ErrorInfo-like reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Replicas:
    """The changes this gateway serves to its peers, and the copies it keeps of theirs."""

    def __init__(self, db: Database, work: UnitOfWork, network: NetworkMembership | None,
                 ca_certificate: x509.Certificate, limits: LimitsConfig, interval: float,
                 actor: str):
        self._db = db
        self._actor = actor
        self._work = work
        self._network = network
        self._ca = ca_certificate
        self._limits = limits
        self._interval = interval
        self._reached: dict[str, float] = {}
        self._asked: dict[str, int] = {}
        self._waiting: dict[str, dict[str, replication_pb2.NetworkChange]] = {}
        self._lock = threading.Lock()

    # -- as a holder --------------------------------------------------------------------------

    def list_changes(self, since: int, epoch: str,
                     page_size: int) -> tuple[list[NetworkChange], int, bool, str]:
        """The changes after `since` in history `epoch` a peer may take (from the start when
        `epoch` is not this gateway's now), filled as a list page is; the position to ask after
        next, whether more follow, and the epoch they count in."""
        if since < 0:
            raise errors.InvalidArgument("since_position must not be negative",
                                         field="since_position")
        size = paging.page_size(page_size)
        conn = self._db.reader()
        current = sql.epoch(conn)  # changed only before serving (a start, a new origin)
        since = since if epoch == current else 0
        found = map(_as_shared, sql.changes(conn, since, size + 1))
        items, last = paging.fill(found, size, self._limits.max_message_bytes
                                  - paging.REPLY_RESERVE)
        return items, items[-1].position if items else since, last is not None, current

    # -- as a receiver ------------------------------------------------------------------------

    def position(self, member_id: str) -> tuple[str, int]:
        """The epoch of `member_id`'s changes taken last, and the position to ask them after in
        it: where the last round ended, or after a restart the position stored (before any
        change still waiting, see `apply`)."""
        with self._lock:
            asked = self._asked.get(member_id)
        return sql.position(self._db.reader(), member_id) if asked is None else asked

    def apply(self, member: network_pb2.MemberGateway,
              changes: Iterable[replication_pb2.NetworkChange], taken: int, epoch: str,
              now: datetime, more: bool = False) -> int:
        """Take `member`'s changes up to position `taken` of its history `epoch` (`more`: the
        member has changes after it) in one transaction, replacing all that was taken of
        another history; refuse each bad one, auditing the first MAX_AUDITED_REFUSALS and a
        summary of the rest. Returns how many were refused.

        Agencies go first, so that a dataset finds its publisher even when the publisher
        changed after it. A member serves each agency and dataset at its latest change only, so
        on a first sync a dataset may come rounds before its publisher: such a change is held
        (in memory, MAX_WAITING at most) and taken again with each round's changes until its
        publisher is taken, and refused only once the member has no more changes to send. The
        stored position stays before the oldest one held, so that a restart, which forgets
        them, asks for them again; the next round asks after `taken`."""
        changes = list(changes)
        with self._lock:
            waiting = self._waiting.get(member.id, {})

        def change(tx: Tx) -> tuple[tuple[int, dict] | None, list[record.Event]]:
            nonlocal waiting
            if not self._names(member.id):  # removed while its changes were pulled
                return None, []
            if sql.position(tx.conn, member.id)[0] != epoch:  # a new history: start over
                sql.drop_member(tx.conn, member.id)
                waiting = {}
            budget = refusals.RefusalBudget(rate=0.0, burst=MAX_AUDITED_REFUSALS)
            held: dict[str, replication_pb2.NetworkChange] = {}
            events, refused = [], 0
            for item in _in_order(changes, waiting):
                try:
                    self._take(tx, member, item, now)
                except ChangeRefused as exc:
                    if exc.reason == PUBLISHER_UNKNOWN and more and len(held) < MAX_WAITING:
                        held[item.dataset.name] = item
                        continue
                    refused += 1
                    event = _refusal(member, item, exc, now)
                    if budget.admit(event, exc.reason):
                        log.warning("[network] refused a change from member %s: %s: %s",
                                    member.id, exc.reason, exc)
                        events.append(event)
            summaries = refusals.summaries(budget.take())
            if summaries:
                log.warning("[network] refused %d more changes from member %s, audited as"
                            " %d summaries", refused - MAX_AUDITED_REFUSALS, member.id,
                            len(summaries))
            events.extend(summaries)
            stored = min([taken] + [item.position - 1 for item in held.values()])
            sql.set_position(tx.conn, member.id, epoch, stored)
            return (refused, held), events

        outcome = self._work.commit(change).value
        if outcome is None:
            return 0
        refused, held = outcome
        with self._lock:
            if self._names(member.id):  # else forget_removed forgets it, or has already
                self._waiting[member.id] = held
                self._asked[member.id] = (epoch, taken)
        return refused

    def forget_removed(self) -> list[str]:
        """Drop what was taken from each member the configuration held no longer names, with
        an event per member saying what went, in one transaction; the members dropped. A
        member removed is no longer vouched for by the network: its agencies and datasets are
        not listed as the network's any more, and its agencies may register at their new home
        gateway (were it named again, its changes would be taken anew)."""
        def change(tx: Tx) -> tuple[list[str], list[record.Event]]:
            gone = [member for member in sql.members(tx.conn) if not self._names(member)]
            events = []
            for member in gone:
                agencies, datasets = sql.forget_member(tx.conn, member)
                events.append(record.Event(
                    self._actor, MEMBER_REMOVED, time=times.to_text(tx.now),
                    reason=f"member {member} is not in the network configuration"
                           f" {self._version()}: the {agencies} agencies and {datasets}"
                           " datasets taken from it are dropped"))
            return gone, events

        gone = self._work.commit(change).value
        with self._lock:
            for member in gone:
                for state in (self._reached, self._asked, self._waiting):
                    state.pop(member, None)
        for member in gone:
            log.warning("[network] dropped what was taken from member %s, which the network"
                        " configuration %s no longer names", member, self._version())
        return gone

    def _names(self, member_id: str) -> bool:
        """Whether the configuration held names `member_id` as another member."""
        assert self._network is not None  # only a member takes others' changes
        return any(member.id == member_id for member in self._network.others())

    def _version(self) -> str:
        assert self._network is not None
        held = self._network.current
        return f"{held.network_id} version {held.version}"

    def reached(self, member_id: str) -> None:
        """Note that `member_id` answered a pull just now."""
        with self._lock:
            self._reached[member_id] = time.monotonic()

    def stale_members(self) -> list[str]:
        """The other members not reached within STALE_INTERVALS pull intervals (since this
        gateway started): what they hold may be missing or out of date in a listing."""
        if self._network is None:
            return []
        horizon = time.monotonic() - STALE_INTERVALS * self._interval
        with self._lock:
            return [member.id for member in self._network.others()
                    if self._reached.get(member.id, horizon - 1) < horizon]

    def _take(self, tx: Tx, member: network_pb2.MemberGateway,
              change: replication_pb2.NetworkChange, now: datetime) -> None:
        kind = change.WhichOneof("change")
        if kind == "agency":
            sql.put_agency(tx.conn, self._agency(tx, member, change.agency, now))
        elif kind == "dataset":
            dataset = self._dataset(tx, member, change.dataset)
            sql.put_dataset(tx.conn, dataset, _tags(dataset), _replication_id(change))
        elif kind == "dataset_removed":
            sql.remove_dataset(tx.conn, member.id, _replication_id(change))
        else:
            raise ChangeRefused("REPLICATION_CHANGE_EMPTY", "the change carries nothing")

    def _agency(self, tx: Tx, member: network_pb2.MemberGateway,
                agency: directory_pb2.Agency, now: datetime) -> Agency:
        agency_id = _parsed(AgencyName.parse, agency.name).agency
        if not serves(member, agency.region_code):
            raise ChangeRefused(
                "REPLICATION_REGION_NOT_SERVED",
                f"{agency.name} is of region {agency.region_code!r}, which member {member.id}"
                f" does not serve (the network configuration gives it"
                f" {', '.join(member.region_codes)})")
        if directory_sql.get_agency(tx.conn, agency_id) is not None:
            raise ChangeRefused("REPLICATION_AGENCY_CONFLICT",
                                f"{agency.name} is an agency of this gateway")
        held = sql.replica_agency(tx.conn, agency_id)
        if held is not None and held.network_member != member.id:
            raise ChangeRefused("REPLICATION_AGENCY_CONFLICT",
                                f"{agency.name} is held by member {held.network_member}")
        self._check_signing_certificate(agency_id, agency.name, "signing certificate",
                                        agency.signing_certificate_pem, agency.signing_key_id,
                                        now)
        for retired in agency.previous_signing_certificates:
            self._check_signing_certificate(agency_id, agency.name,
                                            "previous signing certificate",
                                            retired.certificate_pem, retired.key_id, now)
        return Agency(
            id=agency_id, display_name=agency.display_name, region_code=agency.region_code,
            signing_certificate_pem=agency.signing_certificate_pem,
            signing_key_id=agency.signing_key_id,
            state=_enum(directory_pb2.AgencyState, agency.state, "state"),
            suspend_reason=agency.suspend_reason,
            create_time=_time(agency.create_time, "create_time"),
            update_time=_time(agency.update_time, "update_time"),
            previous_signing_certificates=json.dumps([
                {"certificate_pem": retired.certificate_pem, "key_id": retired.key_id,
                 "retire_time": _time(retired.retire_time, "retire_time")}
                for retired in agency.previous_signing_certificates]),
            network_member=member.id)

    def _check_signing_certificate(self, agency_id: str, agency: str, what: str, pem: str,
                                   key_id: str, now: datetime) -> None:
        """An agency's signing certificate, current or previous, is one the national CA
        issued to it (checked as of its last day when expired: a suspended agency's may be,
        a previous one often is), of the key id it claims: else a peer could add a key of its
        own and sign datasets in the agency's name."""
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
            certs_ca.verify_chain(certificate, self._ca,
                                  now=min(now, certificate.not_valid_after_utc))
            identity = identity_from_certificate(certificate)
            certified = signing.VerifyKey.from_certificate(certificate).key_id
        except (ValueError, certs_ca.CAError) as exc:
            raise ChangeRefused("REPLICATION_CERTIFICATE_INVALID",
                                f"the {what} of {agency} is not one of the national CA:"
                                f" {exc}") from None
        if identity != Identity("agency", agency_id) or certified != key_id:
            raise ChangeRefused("REPLICATION_CERTIFICATE_INVALID",
                                f"the {what} of {agency} is issued to {identity.uri} with key"
                                f" id {certified}, not to {agency} with key id {key_id!r}")

    def _dataset(self, tx: Tx, member: network_pb2.MemberGateway,
                 dataset: catalog_pb2.Dataset) -> Dataset:
        name = _parsed(DatasetName.parse, dataset.name)
        publisher = sql.replica_agency(tx.conn, name.agency)
        if publisher is None or publisher.network_member != member.id:
            raise ChangeRefused(PUBLISHER_UNKNOWN,
                                f"{dataset.name} is published by agency {name.agency}, which"
                                f" member {member.id} does not hold")
        envelope = dataset.signed_manifest
        manifest = _signed_manifest(dataset.name, envelope, publisher)
        if manifest.dataset != dataset.name or manifest.version != dataset.latest_version:
            raise ChangeRefused("REPLICATION_MANIFEST_MISMATCH",
                                f"the signed manifest is of {manifest.dataset} version"
                                f" {manifest.version}, not of {dataset.name} version"
                                f" {dataset.latest_version}")
        _check_not_older(catalog_sql.get_replica_dataset(tx.conn, dataset.name), manifest,
                         envelope.payload)
        classification = _enum(catalog_pb2.Classification, manifest.classification,
                               "manifest.classification")
        sharing_type = _enum(catalog_pb2.SharingType, manifest.sharing_type,
                             "manifest.sharing_type")
        copy = Dataset(
            name=dataset.name, publisher=publisher.id, region_code=publisher.region_code,
            latest_version=manifest.version,
            state=_enum(catalog_pb2.DatasetState, dataset.state, "state"),
            withdraw_reason=dataset.withdraw_reason, classification=classification,
            sharing_type=sharing_type, title=manifest.title, abstract=manifest.abstract,
            tags=" ".join(manifest.tags),
            field_names=" ".join(field.name for field in manifest.schema),
            create_time=_time(dataset.create_time, "create_time"),
            update_time=_time(dataset.update_time, "update_time"),
            signed_manifest=dataset.signed_manifest.SerializeToString(),
            network_member=member.id)
        if not shared_with_network(copy):
            raise ChangeRefused("REPLICATION_NOT_SHARED",
                                f"{dataset.name} is {classification} {sharing_type}: not"
                                " shared with the network")
        return copy


def _refusal(member: network_pb2.MemberGateway, change: replication_pb2.NetworkChange,
             exc: ChangeRefused, now: datetime) -> record.Event:
    return record.Event(Identity("gateway", member.id).uri, REFUSED, resources=_subject(change),
                        outcome=record.REFUSED, reason=f"{exc.reason}: {exc}",
                        time=times.to_text(now))


def _as_shared(change: NetworkChange) -> NetworkChange:
    """`change` as a peer may take it: a dataset not shared with the network any more as its
    replication id only (the triggers record such a change only for a dataset shared before)."""
    if change.dataset is not None and not shared_with_network(change.dataset):
        return NetworkChange(change.position, replication_id=change.replication_id)
    return change


def _replication_id(change: replication_pb2.NetworkChange) -> str:
    if not REPLICATION_ID.fullmatch(change.replication_id):
        raise ChangeRefused("REPLICATION_ID_INVALID",
                            f"replication_id must be 32 lowercase hex digits, not"
                            f" {change.replication_id[:40]!r}")
    return change.replication_id


def _tags(dataset: Dataset) -> list[str]:
    """The tags of `dataset`'s signed manifest, checked by `_dataset`, one by one (its `tags`
    joins them by spaces, which a tag may hold)."""
    envelope = envelope_pb2.Envelope.FromString(dataset.signed_manifest)
    return list(catalog_pb2.Manifest.FromString(envelope.payload).tags)


def _signed_manifest(name: str, envelope: envelope_pb2.Envelope,
                     publisher: Agency) -> catalog_pb2.Manifest:
    """The manifest of dataset `name`, once the publisher's signing key of the key id it names
    verifies its signature: the current key, or a previous one for a manifest that says it was
    signed before that key was retired (the certificates were checked when the publisher was
    taken)."""
    key_id = envelope.signatures[0].key_id if len(envelope.signatures) == 1 else ""
    keys = [(publisher.signing_certificate_pem, None)] + [
        (retired["certificate_pem"], retired["retire_time"])
        for retired in json.loads(publisher.previous_signing_certificates)]
    for pem, retire_time in keys:
        key = signing.VerifyKey.from_certificate(pem)
        if key.key_id != key_id:
            continue
        try:
            envelopes.check_sealed(envelope, key, envelopes.MANIFEST)
            manifest = catalog_pb2.Manifest.FromString(envelope.payload)
        except (signing.SignatureError, DecodeError):
            break
        signed_at = _time(manifest.create_time, "manifest.create_time")
        if retire_time is not None and signed_at >= retire_time:
            raise ChangeRefused("REPLICATION_KEY_RETIRED",
                                f"the signed manifest of {name} is signed with a key agency"
                                f" {publisher.id} retired at {retire_time}, but says it was"
                                f" signed later, at {signed_at}")
        return manifest
    raise ChangeRefused("REPLICATION_SIGNATURE_INVALID",
                        f"the signed manifest of {name} does not verify with a signing key of"
                        f" agency {publisher.id}")


def _check_not_older(held: Dataset | None, manifest: catalog_pb2.Manifest,
                     payload: bytes) -> None:
    """A dataset's copy never goes back to an older version (a replayed manifest, validly
    signed once): a change of the version held must carry the manifest held."""
    if held is None or manifest.version > held.latest_version:
        return
    if manifest.version == held.latest_version:
        if envelope_pb2.Envelope.FromString(held.signed_manifest).payload == payload:
            return
        raise ChangeRefused("REPLICATION_MANIFEST_CONFLICT",
                            f"the signed manifest of {held.name} version {manifest.version}"
                            " differs from the one held for that version")
    raise ChangeRefused("REPLICATION_VERSION_ROLLBACK",
                        f"{held.name} is held at version {held.latest_version}: version"
                        f" {manifest.version} is older")


def _parsed(parse, name: str):
    try:
        return parse(name)
    except errors.InvalidArgument as exc:
        raise ChangeRefused("REPLICATION_NAME_INVALID", exc.message) from None


def _enum(enum, value: int, field: str) -> str:
    try:
        return enum_name(enum, value)
    except ValueError:
        raise ChangeRefused("REPLICATION_CHANGE_MALFORMED",
                            f"{field} is {value}, not a value of {enum.DESCRIPTOR.name}") from None


def _time(stamp: Timestamp, field: str) -> str:
    """A time a change must carry, as stored; refused when unset (the epoch encodes as unset
    too) or out of the Timestamp range, which listings could not turn back into a Timestamp."""
    if not stamp.ByteSize():
        raise ChangeRefused("REPLICATION_CHANGE_MALFORMED", f"{field} is not set")
    try:
        return times.to_text(times.from_timestamp(stamp, field))
    except errors.InvalidArgument as exc:
        raise ChangeRefused("REPLICATION_CHANGE_MALFORMED", exc.message) from None


def _in_order(changes: Iterable[replication_pb2.NetworkChange],
              waiting: dict[str, replication_pb2.NetworkChange],
              ) -> list[replication_pb2.NetworkChange]:
    """`changes` with the waiting ones no newer change of the same dataset replaces, agencies
    first."""
    changes = list(changes)
    newer = {change.dataset.name for change in changes if change.HasField("dataset")}
    removed = {change.replication_id for change in changes if change.HasField("dataset_removed")}
    kept = [change for name, change in waiting.items()
            if name not in newer and change.replication_id not in removed]
    return sorted(changes + kept, key=lambda change: change.WhichOneof("change") != "agency")


def _subject(change: replication_pb2.NetworkChange) -> tuple[str, ...]:
    kind = change.WhichOneof("change")
    if kind == "agency":
        return (change.agency.name,) if AgencyName.match(change.agency.name) else ()
    if kind == "dataset":
        return (change.dataset.name,) if DatasetName.match(change.dataset.name) else ()
    return ()
