"""The gateway as a witness of the other members' audit logs (C2SP tlog-witness).

A member of a network follows the logs of the other members its network configuration names
(origin `audit_origin`, key `audit_verifier_key`) and cosigns their checkpoints with its witness
key ([network] witness_key, whose public key is its `witness_verifier_key`). The decision is
the protocol core's (`govshare.transparency.witness.Witness`); here the tree head last cosigned
is read and the new one recorded in one transaction of the unit of work, so two concurrent
requests can never roll a log back. A cosignature is the witness's state (its `witnessed_logs`
row), not an audit event: an event would make a new checkpoint of this gateway's own log for
the other members to cosign, whose cosignatures would make new events in theirs, and the
members' logs would never stop growing.

A refusal is audited (`witness.refused`) within the refusal budget of who asked
(gateway/refusals.py: one by one up to it, summarised beyond): the log's gateway over gRPC,
anyone over HTTP, where no certificate says who posts, so that replaying a checkpoint writes at
most the budget's events, never a committed decision in a member's name. One refusal is evidence
whoever sends it: a checkpoint the log's key signed of the size this witness cosigned with
another root. Its pair (the note cosigned, with this witness's cosignature, and the conflicting
note) is kept as network evidence (gateway/evidence.py, FORK_SAME_SIZE, the pair once and
at most MAX_PER_SUBJECT a log) and audited with the refusal in one transaction. A proof that
fails is no evidence: a client can send any log's genuine checkpoint with a junk proof, and a
log that went back is caught by the members' gossip, which asks the log itself for the proof.

WitnessService (gateway/services/witness.py) calls `GatewayWitness.add_checkpoint`; it takes
the parsed request body and the member whose log it is, so the spec's HTTP form can call it the
same way. With each tree head the witness keeps its own cosignature line, and lists both by
origin (`list_cosigned`, ListWitnessedCheckpoints): what it vouches each log showed it, which
the other members compare with their own view (gateway/gossip.py).
"""

from __future__ import annotations

from certs.identity import Identity
from gateway import evidence, federation, paging, refusals
from gateway.config import LimitsConfig
from gateway.context import refusal_event
from gateway.federation import NetworkMembership
from gateway.models import Evidence, WitnessedLog
from gateway.paging import Page, PageTokens
from gateway.refusals import RefusalBudget
from gateway.storage import witness as sql
from gateway.unit_of_work import Tx, UnitOfWork
from gateway.v1 import network_pb2, witness_pb2
from govshare import errors, signing, times
from govshare.transparency import note, record
from govshare.transparency import witness as tlog
from govshare.transparency.cosignature import CosignatureSigner
from govshare.transparency.note import NoteVerifier
from govshare.transparency.witness import AddCheckpoint, Cosigned, TreeHead, Witness

MAX_CHECKPOINT_BYTES = 8192
"""The largest checkpoint note this witness takes. A govshare checkpoint is some 200 bytes
(origin, size, root, one signature); the bound leaves room for extension lines and several
signatures, yet keeps what a member can make this witness store small: the note last
cosigned and the evidence of a few forks per log. C2SP tlog-witness lets a witness refuse what
it will not store."""
REFUSED = "witness.refused"
"""The audit action of a checkpoint this gateway refused to cosign, with the spec's reason."""


class GatewayWitness:
    """Cosigns the other members' checkpoints, recording what it cosigned."""

    def __init__(self, work: UnitOfWork, network: NetworkMembership, key: signing.SigningKey,
                 page_tokens: PageTokens, limits: LimitsConfig, budget: RefusalBudget):
        self._work = work
        self._network = network
        self._key = key
        self._page_tokens = page_tokens
        self._limits = limits
        self._budget = budget
        self._witness: tuple[bytes, Witness] | None = None

    def add_checkpoint(self, member: network_pb2.MemberGateway, request: AddCheckpoint,
                       caller: str | None) -> str:
        """The cosignature line for `request`, a checkpoint of `member`'s log, once recorded;
        the spec's refusal (a govshare.transparency.witness.WitnessRefusal, audited)
        otherwise. `caller` is the member's gateway when it asked over mutual TLS, None over
        HTTP, where anyone may post."""
        actor = caller or record.ANONYMOUS
        digest = signing.sha256(request.to_bytes()).hex()
        try:
            self._check(member, request)
            decision = _Decision(self._current_witness(), request, member, actor, digest,
                                 self._network.own_id)
            outcome = self._work.commit(decision).value
            if isinstance(outcome, tlog.WitnessRefusal):
                if decision.kept is not None:
                    evidence.logged(decision.kept)
                raise outcome
        except errors.GatewayError as refusal:
            if not refusal.audited:  # evidence is audited with it, the rest within the budget
                refusals.audit(self._budget, self._work.append, refusal_event(
                    actor, REFUSED, [member.audit_origin], digest, refusal), refusal.reason)
                refusal.audited = True
            raise
        return outcome.cosignature

    def list_cosigned(self, request: witness_pb2.ListWitnessedCheckpointsRequest
                      ) -> Page[WitnessedLog]:
        """ListWitnessedCheckpoints: a page of the logs this witness follows, by origin, each
        with the checkpoint it last cosigned and its cosignature line."""
        size = paging.page_size(request.page_size)
        after = self._page_tokens.decode(request.page_token, request) or ""
        found = sql.witnessed_logs(self._work.db.reader(), after, size + 1)
        return paging.page(self._page_tokens, self._limits, request, found, size,
                           lambda log: log.origin)

    def cosigned(self, origin: str) -> WitnessedLog | None:
        """What this witness last cosigned of the log `origin` (None: nothing yet)."""
        return sql.witnessed_log(self._work.db.reader(), origin)

    def _check(self, member: network_pb2.MemberGateway, request: AddCheckpoint) -> None:
        """Refuse what is not a request for `member`'s log this witness reads at all."""
        if len(request.checkpoint) > MAX_CHECKPOINT_BYTES:
            raise errors.InvalidArgument(
                f"the checkpoint note has {len(request.checkpoint)} bytes; this witness takes"
                f" notes of at most {MAX_CHECKPOINT_BYTES} bytes: sign checkpoints with fewer"
                " or shorter extension lines", reason="WITNESS_CHECKPOINT_TOO_LARGE",
                field="checkpoint", max_bytes=MAX_CHECKPOINT_BYTES)
        if len(request.proof) > tlog.MAX_PROOF_LINES:
            raise tlog.MalformedRequest(
                f"consistency_proof has {len(request.proof)} hashes, more than"
                f" {tlog.MAX_PROOF_LINES}", field="consistency_proof")
        origin = request.origin
        if origin != member.audit_origin and any(m.audit_origin == origin
                                                 for m in self._network.others()):
            raise errors.PermissionDenied(
                f"the checkpoint is of {origin!r}, another member's log: a gateway asks for"
                f" cosignatures of its own log, {member.audit_origin!r}",
                reason="NOT_LOG_OPERATOR", origin=origin)

    def _current_witness(self) -> Witness:
        """The witness of the configuration held (rebuilt when a newer one replaces it)."""
        configuration = self._network.current
        cached = self._witness
        if cached is not None and cached[0] == configuration.payload:
            return cached[1]
        own = configuration.member(self._network.own_id)
        assert own is not None  # the membership never holds a configuration without it
        signer = CosignatureSigner(federation.witness_verifier(own).name, self._key)
        logs = [tlog.WitnessedLog(m.audit_origin,
                                  NoteVerifier.from_verifier_key(m.audit_verifier_key))
                for m in self._network.others()]
        witness = Witness(signer, logs)
        self._witness = (configuration.payload, witness)
        return witness


class _Decision:
    """One add-checkpoint decision, the unit of work's change: read the tree head cosigned,
    decide, and record the checkpoint cosigned, or keep the evidence a refusal is with the
    refusal's event; one transaction. Its value is the Cosigned or the refusal (audited when
    its evidence was `kept`)."""

    def __init__(self, witness: Witness, request: AddCheckpoint,
                 member: network_pb2.MemberGateway, actor: str, digest: str, own_id: str):
        self._witness = witness
        self._request = request
        self._member = member
        self._actor = actor
        self._digest = digest
        self._own_id = own_id
        self.kept: Evidence | None = None

    def __call__(self, tx: Tx) -> tuple[Cosigned | tlog.WitnessRefusal, list[record.Event]]:
        origin = self._request.origin
        stored = sql.witnessed_log(tx.conn, origin)
        last = TreeHead(stored.tree_size, stored.root_hash) if stored else tlog.NEVER_COSIGNED
        try:
            cosigned = self._witness.add_checkpoint(self._request, last, int(tx.now.timestamp()))
        except tlog.WitnessRefusal as refusal:
            found = self._conflict(stored, refusal)
            events = evidence.keep(tx, found, Identity("gateway", self._own_id).uri) \
                if found else []
            if events:
                self.kept, refusal.audited = found, True
                events.append(refusal_event(self._actor, REFUSED, [origin], self._digest,
                                            refusal))
            return refusal, events
        head = cosigned.tree_head
        sql.record_cosigned(tx.conn, WitnessedLog(origin, head.size, head.root_hash,
                                                  self._request.checkpoint,
                                                  times.to_text(tx.now), cosigned.cosignature))
        return cosigned, []

    def _conflict(self, stored: WitnessedLog | None,
                  refusal: tlog.WitnessRefusal) -> Evidence | None:
        """The evidence `refusal` is when it refused a checkpoint (which the log's key signed:
        the witness checks that before consistency) of the size cosigned with another root;
        None for any other refusal, a proof that fails included."""
        if stored is None or not isinstance(refusal, tlog.InconsistentCheckpoint):
            return None
        refused = note.Checkpoint.parse(note.unverified_text(self._request.checkpoint))
        if refused.size != stored.tree_size or refused.root_hash == stored.root_hash:
            return None
        cosigned = note.Checkpoint.parse(note.unverified_text(stored.checkpoint))
        how = "by its gateway" if self._actor != record.ANONYMOUS else "over HTTP"
        member = self._member
        return Evidence(
            evidence.FORK_SAME_SIZE, refused.origin, member.id,
            stored.checkpoint + stored.cosignature.encode(), self._own_id,
            self._request.checkpoint, self._own_id,
            evidence.checkpoint_pair(refused.origin, cosigned, refused),
            f"member {member.id}'s log {refused.origin!r}: the log signed two checkpoints of"
            f" size {refused.size} with other roots, one cosigned by {self._own_id}, one sent"
            f" to it {how} ({refusal.message})", create_time="")
