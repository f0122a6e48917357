"""Gossip between the members of a network: each compares what the others cosigned of every
log, and the configuration each holds, with its own view.

A witness cosigns one linear history per log, but with a quorum of at most half the other
members a log could show one history to some witnesses and another to the rest, each side
cosigned to its quorum, and no witness would see both. Comparing what the witnesses cosigned
closes that, after Sigsum's witness roster and transparency-dev's witness, which publish the
latest checkpoint cosigned per log. Every [network] gossip_seconds one round (`round`: the
thread's, and tests') does, for each other member:

1. read its list of the latest checkpoint it cosigned per log (WitnessService.
   ListWitnessedCheckpoints, pages of PAGE_SIZE, at most MAX_PAGES; a page holding more than
   PAGE_SIZE is refused unread, and the list ends there). Each entry must be a checkpoint of
   another member's log (or this gateway's), signed with that log's audit key and cosigned with
   the listing member's witness key, and one per log: of several, the largest is kept and the
   others refused. Anything refused is audited (`gossip.refused`, the member as actor, the
   first MAX_AUDITED_REFUSALS of a round one by one and the rest summarised), and not again
   while the member lists it round after round. An origin no member has (a log's former
   origin) is passed over;
2. compare each entry kept with this gateway's view of that log: for its own log, its latest
   checkpoint; for another's, the checkpoint it cosigned last as a witness, or without one the
   first entry of the round. Of one size, the roots must be equal (else FORK_SAME_SIZE: the
   log signed two trees of one size). Of two sizes, the log must prove the smaller a prefix of
   the larger: this gateway's own log by itself, another's over AuditService.
   GetConsistencyProof; a proof that fails, or a log not reaching the larger size (rolled
   back), is FORK_NOT_CONSISTENT. Pairs proved are remembered (MAX_REMEMBERED). At most
   MAX_PROOFS proofs are asked a round, taken in turns, one member's entry after another's,
   so that no member's list, however long, spends them all; the comparisons left over, and
   those of a log that does not answer, are counted as left for the next round, and go first
   in it;
3. read the configuration it holds (NetworkService.GetNetworkConfiguration) and verify it as
   this gateway verifies its own: of the version held but other bytes, it is evidence of an
   authority that signed two configurations of one version (CONFIGURATION_EQUIVOCATION); an
   older or newer version is logged, since one of the two gateways is stale.

Evidence is kept and audited by gateway.evidence, each pair once; `govshare network status`
shows it. Nothing else of the round is audited: a log recording its own polling would never
settle (docs/FEDERATION.md, "Witnesses").
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from certs.identity import Identity
from certs.network_configuration import VerifiedConfiguration
from gateway import evidence, federation, refusals
from gateway.audit.log import AuditLog
from gateway.evidence import NetworkEvidence
from gateway.federation import NetworkMembership
from gateway.models import Evidence
from gateway.peers import PeerChannels
from gateway.periodic import Periodic
from gateway.refusals import RefusalBudget
from gateway.unit_of_work import UnitOfWork
from gateway.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
    witness_pb2,
    witness_pb2_grpc,
)
from gateway.witness import MAX_CHECKPOINT_BYTES, GatewayWitness
from govshare import errors, signing
from govshare.transparency import merkle, note, record
from govshare.transparency.cosignature import WitnessPolicy

log = logging.getLogger("govshare.gossip")

CALL_SECONDS = 10.0
"""How long one call to a member may take."""
PAGE_SIZE = 100
"""Entries asked for a page, and the most a page may hold: a larger one is refused unread."""
MAX_PAGES = 4
"""Pages read from one member a round: a network has at most 100 members, so 400 logs."""
MAX_PROOFS = 16
"""Consistency proofs asked a round, shared among the listing members in turn; comparisons
beyond wait for the next round, and go first in it."""
MAX_REMEMBERED = 4096
"""Pairs of checkpoints proved consistent, remembered so that they are not asked for again
(all forgotten at once beyond it)."""
MAX_AUDITED_REFUSALS = 20
"""Refused entries of a round audited one by one; the rest as one summary per reason."""
REFUSED = "gossip.refused"
"""The audit action of an entry a member listed that is not what it must be."""
INVALID = "WITNESSED_CHECKPOINT_INVALID"
"""The reason of a refused entry, or page."""


class EntryRefused(Exception):
    """An entry of a member's list that is not a cosigned checkpoint of a log it witnesses."""


class Unanswered(Exception):
    """A log did not answer for a consistency proof: asked again next round."""


@dataclass(frozen=True)
class _Seen:
    """A checkpoint of a member's log, its log's signature checked, and who showed it."""

    note: bytes
    checkpoint: note.Checkpoint
    shown_by: str
    """The member id of the witness that cosigned it, or of this gateway for its own view."""


@dataclass
class _Listing:
    """What one member listed this round, and what came of comparing it."""

    member: network_pb2.MemberGateway
    entries: dict[str, _Seen] = field(default_factory=dict)
    """The entry kept per log's origin: the largest, when a member lists more."""
    failed: str = ""
    """Why its list could not be read ("" when it was)."""
    configuration: str = ""
    compared: int = 0
    skipped: int = 0
    forks: int = 0

    def outcome(self) -> str:
        if self.failed:
            return self.failed
        later = f", {self.skipped} left for the next round" if self.skipped else ""
        return (f"{self.compared} checkpoints compared, {self.forks} forks found{later};"
                f" {self.configuration}")


@dataclass
class _Round:
    """What one round keeps across members."""

    budget: RefusalBudget
    first: dict[str, _Seen] = field(default_factory=dict)
    """The first entry of the round per log this gateway holds no view of."""
    refused: dict[str, set[bytes]] = field(default_factory=dict)
    """The digests of what each member listed that was refused this round."""
    skipped: set[tuple] = field(default_factory=set)
    """The pairs left unproved this round, for the next one to prove first."""


class Gossip:
    """Compares, every interval, what the other members cosigned and hold with this
    gateway's view."""

    def __init__(self, audit_log: AuditLog, work: UnitOfWork, witness: GatewayWitness,
                 found: NetworkEvidence, network: NetworkMembership, channels: PeerChannels,
                 interval: float):
        self._log = audit_log
        self._work = work
        self._witness = witness
        self._found = found
        self._network = network
        self._channels = channels
        self._proved: set[tuple[str, int, bytes, int, bytes]] = set()
        self._refused: dict[str, set[bytes]] = {}
        """The digests refused last round per member: what is listed again is not audited
        again (bounded by what a member may list)."""
        self._skipped: set[tuple] = set()
        self._turn = 0
        """Which member's comparisons go first this round: each round the next."""
        self._lock = threading.Lock()
        self._rounds = Periodic("gossip", interval, self.round)

    def start(self) -> None:
        self._rounds.start()

    def stop(self) -> None:
        self._rounds.stop()

    def round(self) -> dict[str, str]:
        """Compare what each other member cosigned and holds now; what came of it per member
        id (a member that cannot be asked never keeps the others from being asked)."""
        with self._lock:
            state = _Round(RefusalBudget(rate=0.0, burst=MAX_AUDITED_REFUSALS))
            listings = [self._read(member, state) for member in self._network.others()]
            self._compare_all(listings, state)
            self._refused, self._skipped = state.refused, state.skipped
            summaries = refusals.summaries(state.budget.take())
            if summaries:
                self._work.append(summaries)
        return {listing.member.id: listing.outcome() for listing in listings}

    def _read(self, member: network_pb2.MemberGateway, state: _Round) -> _Listing:
        """`member`'s list, its entries checked, one kept per log; and its configuration."""
        listing = _Listing(member)
        try:
            entries = self._listed(member, state)
        except grpc.RpcError as exc:
            listing.failed = self._failed(member, exc)
            return listing
        for entry in entries:
            try:
                seen = self._checked(member, entry)
            except EntryRefused as exc:
                self._refuse(member, entry.origin, _digest_of(entry), str(exc), state)
                continue
            if seen is not None:
                self._keep_largest(listing, entry, seen, state)
        try:
            listing.configuration = self._compare_configuration(
                member, self._configuration_of(member))
        except grpc.RpcError as exc:
            listing.configuration = self._failed(member, exc)
        return listing

    def _failed(self, member: network_pb2.MemberGateway, exc: grpc.RpcError) -> str:
        self._channels.failed(member, exc)
        return f"{exc.code().name}: {exc.details()}"

    # -- what a member lists -------------------------------------------------------------------

    def _listed(self, member: network_pb2.MemberGateway, state: _Round
                ) -> list[witness_pb2.WitnessedCheckpoint]:
        """The entries of `member`'s pages, up to a page holding more than PAGE_SIZE, which is
        refused unread (with what follows it)."""
        stub = witness_pb2_grpc.WitnessServiceStub(self._channels.channel(member))
        request = witness_pb2.ListWitnessedCheckpointsRequest(page_size=PAGE_SIZE)
        entries: list[witness_pb2.WitnessedCheckpoint] = []
        for _ in range(MAX_PAGES):
            response = stub.ListWitnessedCheckpoints(request, timeout=CALL_SECONDS)
            listed = response.witnessed_checkpoints
            if len(listed) > PAGE_SIZE:
                response.next_page_token = ""  # the entries say what was refused
                self._refuse(member, "", signing.sha256(response.SerializeToString(
                    deterministic=True)), f"a page of {len(listed)} entries, more than the"
                    f" {PAGE_SIZE} asked for", state)
                break
            entries.extend(listed)
            if not response.next_page_token:
                break
            request.page_token = response.next_page_token
        return entries

    def _checked(self, member: network_pb2.MemberGateway,
                 entry: witness_pb2.WitnessedCheckpoint) -> _Seen | None:
        """`entry` as a checkpoint of its log cosigned by `member`; None for an origin of no
        member; EntryRefused when it is not that."""
        log_member = self._log_member(entry.origin)
        if log_member is None:
            return None
        if log_member.id == member.id:
            raise EntryRefused("a witness lists its own log")
        if len(entry.checkpoint) > 2 * MAX_CHECKPOINT_BYTES:  # the note and one cosignature
            raise EntryRefused(f"the entry has {len(entry.checkpoint)} bytes")
        signed = bytes(entry.checkpoint)
        try:
            key = note.NoteVerifier.from_verifier_key(log_member.audit_verifier_key)
            checkpoint = note.Checkpoint.parse(note.open_note(signed, [key]))
            WitnessPolicy([member.witness_verifier_key], 1).check(signed)
        except (ValueError, note.NoteError) as exc:
            raise EntryRefused(f"it is not a checkpoint of {entry.origin!r} signed with the"
                               f" log's audit key and cosigned with {member.id}'s witness"
                               f" key ({exc})") from None
        if checkpoint.origin != entry.origin:
            raise EntryRefused(f"it is listed as {entry.origin!r} but is of"
                               f" {checkpoint.origin!r}")
        return _Seen(signed, checkpoint, member.id)

    def _keep_largest(self, listing: _Listing, entry: witness_pb2.WitnessedCheckpoint,
                      seen: _Seen, state: _Round) -> None:
        """Keep `seen` as the listing's entry of its log unless one as large is kept; a
        witness lists the one checkpoint it cosigned last per log, so the other is refused."""
        origin = entry.origin
        kept = listing.entries.get(origin)
        if kept is not None:
            smaller = seen if seen.checkpoint.size <= kept.checkpoint.size else kept
            self._refuse(listing.member, origin, signing.sha256(smaller.note),
                         f"more than one entry of {origin!r}: a witness lists the checkpoint"
                         f" it cosigned last of each log, and the largest listed is compared",
                         state)
            if smaller is seen:
                return
        listing.entries[origin] = seen

    def _log_member(self, origin: str) -> network_pb2.MemberGateway | None:
        own = self._network.current.member(self._network.own_id)
        return own if own is not None and own.audit_origin == origin else \
            self._network.log_of(origin)

    def _refuse(self, member: network_pb2.MemberGateway, origin: str, digest: bytes, why: str,
                state: _Round) -> None:
        """Audit the refusal of what `member` listed (of digest `digest`) unless it was
        refused last round already (within the round's budget): a member goes on listing what
        it cosigned, and an entry refused each round would grow the log each round."""
        state.refused.setdefault(member.id, set()).add(digest)
        if digest in self._refused.get(member.id, ()):
            return
        event = record.Event(Identity("gateway", member.id).uri, REFUSED,
                             resources=(origin,) if origin else (), outcome=record.REFUSED,
                             reason=f"{INVALID}: {why}")
        if state.budget.admit(event, INVALID):
            log.warning("[network] member %s lists what is refused: %s", member.id, why)
            self._work.append([event])

    # -- comparing -----------------------------------------------------------------------------

    def _compare_all(self, listings: list[_Listing], state: _Round) -> None:
        """Compare every entry kept; those that need a proof share MAX_PROOFS in turns, one
        member's entry after another's (starting with the next member each round), each
        member's entries left unproved last round first."""
        waiting: list[list[tuple[_Listing, str, _Seen, _Seen]]] = []
        for listing in listings:
            queue = []
            for origin, seen in listing.entries.items():
                view = self._view(origin) or state.first.setdefault(origin, seen)
                if self._compared(listing, origin, view, seen):
                    continue
                queue.append((listing, origin, *_ordered(view, seen)))
            queue.sort(key=lambda item: _pair_key(item[1], item[2], item[3]) not in
                       self._skipped)
            waiting.append(queue)
        if waiting:
            self._turn = (self._turn + 1) % len(waiting)
            waiting = waiting[self._turn:] + waiting[:self._turn]
        proofs = 0
        for listing, origin, first, second in _in_turns(waiting):
            if _pair_key(origin, first, second) in self._proved:  # by another's entry
                listing.compared += 1
            elif proofs < MAX_PROOFS:
                proofs += 1
                self._prove_pair(listing, origin, first, second, state)
            else:
                listing.skipped += 1
                state.skipped.add(_pair_key(origin, first, second))

    def _compared(self, listing: _Listing, origin: str, view: _Seen, seen: _Seen) -> bool:
        """Compare `seen` with `view` when that needs no proof: of one size, or a pair proved
        before. False when it needs one."""
        first, second = _ordered(view, seen)
        a, b = first.checkpoint, second.checkpoint
        if a.size == b.size:
            listing.compared += 1
            if a.root_hash != b.root_hash:
                listing.forks += self._record(
                    evidence.FORK_SAME_SIZE, origin, first, second,
                    f"the log signed two checkpoints of size {a.size} with other roots, one"
                    f" shown to {first.shown_by}, one to {second.shown_by}")
            return True
        if _pair_key(origin, first, second) in self._proved:
            listing.compared += 1
            return True
        return False

    def _prove_pair(self, listing: _Listing, origin: str, first: _Seen, second: _Seen,
                    state: _Round) -> None:
        a, b = first.checkpoint, second.checkpoint
        try:
            self._prove(origin, a, b)
        except Unanswered as exc:
            log.warning("[network] cannot compare checkpoints of %r yet: %s", origin, exc)
            listing.skipped += 1
            state.skipped.add(_pair_key(origin, first, second))
            return
        except merkle.ProofError as exc:
            listing.compared += 1
            listing.forks += self._record(
                evidence.FORK_NOT_CONSISTENT, origin, first, second,
                f"the log does not prove its checkpoint of size {a.size}, shown to"
                f" {first.shown_by}, a prefix of its checkpoint of size {b.size}, shown to"
                f" {second.shown_by}: {exc}")
            return
        listing.compared += 1
        _remember(self._proved, _pair_key(origin, first, second))

    def _view(self, origin: str) -> _Seen | None:
        """This gateway's own view of the log `origin`: its own latest checkpoint, or the one
        it cosigned last as a witness (None if none)."""
        own = self._network.own_id
        if origin == self._log.origin:
            signed = bytes(self._log.checkpoint().note)
        else:
            cosigned = self._witness.cosigned(origin)
            if cosigned is None:
                return None
            signed = cosigned.checkpoint
        return _Seen(signed, note.Checkpoint.parse(note.unverified_text(signed)), own)

    def _prove(self, origin: str, a: note.Checkpoint, b: note.Checkpoint) -> None:
        """merkle.ProofError unless the log proves `a` a prefix of `b` (a.size < b.size)."""
        if a.size == 0:
            if a.root_hash != merkle.EMPTY_ROOT:
                raise merkle.ProofError("its checkpoint of size 0 has a root of leaves")
            return
        merkle.verify_consistency(a.size, b.size, self._proof(origin, a.size, b.size),
                                  a.root_hash, b.root_hash)

    def _proof(self, origin: str, first: int, second: int) -> list[bytes]:
        if origin == self._log.origin:
            if second > self._log.checkpoint().tree_size:
                raise merkle.ProofError(f"this gateway's log holds fewer than {second} leaves")
            return self._log.consistency_proof(first, second)
        member = self._network.log_of(origin)
        assert member is not None  # _checked found it
        stub = audit_pb2_grpc.AuditServiceStub(self._channels.channel(member))
        try:
            return list(stub.GetConsistencyProof(audit_pb2.GetConsistencyProofRequest(
                first_size=first, second_size=second), timeout=CALL_SECONDS).hashes)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                raise merkle.ProofError(f"its log holds fewer than {second} leaves"
                                        f" ({exc.details()})") from None
            self._channels.failed(member, exc)
            raise Unanswered(f"member {member.id}: {exc.code().name}: {exc.details()}"
                             ) from None

    def _record(self, kind: str, origin: str, first: _Seen, second: _Seen, why: str) -> int:
        member = self._log_member(origin)
        assert member is not None
        self._found.record(Evidence(
            kind, origin, member.id, first.note, first.shown_by, second.note, second.shown_by,
            evidence.checkpoint_pair(origin, first.checkpoint, second.checkpoint),
            f"member {member.id}'s log {origin!r}: {why}", create_time=""))
        return 1

    # -- configurations ------------------------------------------------------------------------

    def _configuration_of(self, member: network_pb2.MemberGateway
                          ) -> network_pb2.SignedNetworkConfiguration | None:
        stub = network_pb2_grpc.NetworkServiceStub(self._channels.channel(member))
        response = stub.GetNetworkConfiguration(network_pb2.GetNetworkConfigurationRequest(
            name=federation.RESOURCE), timeout=CALL_SECONDS)
        held = response.network_configuration
        return held if response.HasField("network_configuration") else None

    def _compare_configuration(self, member: network_pb2.MemberGateway,
                               signed: network_pb2.SignedNetworkConfiguration | None) -> str:
        ours = self._network.current
        if signed is None:
            return "it holds no configuration"
        try:
            theirs = self._network.verify_elsewhere(signed)
        except errors.NetworkConfigurationRejected as exc:
            log.warning("[network] member %s holds a configuration refused here: %s: %s",
                        member.id, exc.reason, exc.message)
            return f"its configuration is refused here: {exc.reason}"
        if theirs.payload == ours.payload:
            return f"the same configuration, version {ours.version}"
        if theirs.network_id == ours.network_id and theirs.version == ours.version:
            self._found.record(Evidence(
                evidence.CONFIGURATION_EQUIVOCATION, federation.RESOURCE, "",
                ours.signed.SerializeToString(), self._network.own_id,
                theirs.signed.SerializeToString(), member.id,
                f"{ours.network_id} {ours.version} {_digest(ours)} {_digest(theirs)}",
                f"the network authority signed two configurations of {ours.network_id}"
                f" version {ours.version}, one held here, one by member {member.id}",
                create_time=""))
            return f"another configuration of version {ours.version}: evidence kept"
        older = "older" if theirs.version < ours.version else "newer"
        log.warning("[network] member %s holds %s version %d of %s, this gateway version %d:"
                    " the gateway holding the older one must be given the newer", member.id,
                    older, theirs.version, theirs.network_id, ours.version)
        return f"it holds version {theirs.version}, {older} than this gateway's {ours.version}"


def _ordered(x: _Seen, y: _Seen) -> tuple[_Seen, _Seen]:
    """The two by size (then by who showed them): the smaller must be a prefix of the
    larger."""
    first, second = sorted((x, y), key=lambda s: (s.checkpoint.size, s.shown_by))
    return first, second


def _pair_key(origin: str, first: _Seen, second: _Seen) -> tuple[str, int, bytes, int, bytes]:
    a, b = first.checkpoint, second.checkpoint
    return origin, a.size, a.root_hash, b.size, b.root_hash


def _in_turns(queues: list[list]) -> Iterator:
    """The queues' items, one of each queue in turn."""
    for turn in itertools.zip_longest(*queues):
        yield from (item for item in turn if item is not None)


def _digest_of(entry: witness_pb2.WitnessedCheckpoint) -> bytes:
    return signing.sha256(entry.SerializeToString(deterministic=True))


def _remember(seen: set, item: object) -> None:
    """Add `item` to `seen`, forgetting everything once it holds MAX_REMEMBERED."""
    if len(seen) >= MAX_REMEMBERED:
        seen.clear()
    seen.add(item)


def _digest(configuration: VerifiedConfiguration) -> str:
    return signing.sha256(configuration.payload).hex()
