"""The gateway as a witness of the other members' audit logs (C2SP tlog-witness).

A member of a network follows the logs of the other members its network configuration names
(origin `audit_origin`, key `audit_verifier_key`) and cosigns their checkpoints with its witness
key ([network] witness_key, whose public key is its `witness_verifier_key`). The decision is
the protocol core's (`govshare.transparency.witness.Witness`); here the tree head last cosigned
is read and the new one recorded in one transaction of the unit of work, so two concurrent
requests can never roll a log back. A cosignature is the witness's state (its `witnessed_logs`
row), not an audit event: an event would make a new checkpoint of this gateway's own log for
the other members to cosign, whose cosignatures would make new events in theirs, and the
members' logs would never stop growing. A refusal is audited: it is evidence, and rare. A
checkpoint refused as not extending what was cosigned is evidence that its log forked or rolled
back (a restored backup): the refused note is kept beside the refusal's event, the first one
refused of each size and at most MAX_REFUSED_NOTES per log (the refusals' events count them
all), and no note above MAX_CHECKPOINT_BYTES is taken at all.

WitnessService (gateway/services/witness.py) calls `GatewayWitness.add_checkpoint`; it takes
the parsed request body and the peer, so the spec's HTTP form can call it the same way. With
each tree head the witness keeps its own cosignature line, and lists both by origin
(`list_cosigned`, ListWitnessedCheckpoints): what it vouches each log showed it, which the
other members compare with their own view (gateway/gossip.py).
"""

from __future__ import annotations

from gateway import federation, paging
from gateway.config import LimitsConfig
from gateway.context import refusal_event
from gateway.federation import NetworkMembership
from gateway.models import WitnessedLog, WitnessRefusal
from gateway.paging import Page, PageTokens
from gateway.storage import witness as sql
from gateway.unit_of_work import Tx, UnitOfWork
from gateway.v1 import network_pb2, witness_pb2
from govshare import errors, signing, times
from govshare.transparency import record
from govshare.transparency import witness as tlog
from govshare.transparency.cosignature import CosignatureSigner
from govshare.transparency.note import NoteVerifier
from govshare.transparency.witness import AddCheckpoint, Cosigned, TreeHead, Witness

MAX_CHECKPOINT_BYTES = 8192
"""The largest checkpoint note this witness takes. A govshare checkpoint is some 200 bytes
(origin, size, root, one signature); the bound leaves room for extension lines and several
signatures, yet keeps what a member can make this witness store small: the note last
cosigned and the few refused per log. C2SP tlog-witness lets a witness refuse what it will not
store."""
MAX_REFUSED_NOTES = 8
"""The refused notes kept per log: evidence of a fork needs one, a few show its course."""
REFUSED = "witness.refused"
"""The audit action of a checkpoint this gateway refused to cosign, with the spec's reason."""


class GatewayWitness:
    """Cosigns the other members' checkpoints, recording what it cosigned."""

    def __init__(self, work: UnitOfWork, network: NetworkMembership, key: signing.SigningKey,
                 page_tokens: PageTokens, limits: LimitsConfig):
        self._work = work
        self._network = network
        self._key = key
        self._page_tokens = page_tokens
        self._limits = limits
        self._witness: tuple[bytes, Witness] | None = None

    def add_checkpoint(self, actor: str, peer: network_pb2.MemberGateway,
                       request: AddCheckpoint) -> str:
        """The cosignature line for `request` sent by `peer` (as `actor`), once recorded; the
        spec's refusal (a govshare.transparency.witness.WitnessRefusal, audited) otherwise."""
        if len(request.checkpoint) > MAX_CHECKPOINT_BYTES:
            raise errors.InvalidArgument(
                f"the checkpoint note has {len(request.checkpoint)} bytes; this witness takes"
                f" notes of at most {MAX_CHECKPOINT_BYTES} bytes: sign checkpoints with fewer"
                " or shorter extension lines", reason="WITNESS_CHECKPOINT_TOO_LARGE",
                field="checkpoint", max_bytes=MAX_CHECKPOINT_BYTES)
        origin = request.origin
        if origin != peer.audit_origin and any(m.audit_origin == origin
                                               for m in self._network.others()):
            raise errors.PermissionDenied(
                f"the checkpoint is of {origin!r}, another member's log: a gateway asks for"
                f" cosignatures of its own log, {peer.audit_origin!r}", reason="NOT_LOG_OPERATOR",
                origin=origin)
        witness = self._current_witness()
        digest = signing.sha256(request.to_bytes()).hex()
        outcome = self._work.commit(
            lambda tx: _decide(tx, witness, request, origin, actor, digest)).value
        if isinstance(outcome, tlog.WitnessRefusal):
            outcome.audited = True
            raise outcome
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

    def refusals(self, origin: str) -> list[WitnessRefusal]:
        """The checkpoints of `origin` refused as inconsistent: a fork's or rollback's
        evidence."""
        return sql.refusals(self._work.db.reader(), origin)

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


def _decide(tx: Tx, witness: Witness, request: AddCheckpoint, origin: str, actor: str,
            digest: str) -> tuple[Cosigned | tlog.WitnessRefusal, list[record.Event]]:
    """Read the tree head cosigned, decide, record: one transaction."""
    stored = sql.witnessed_log(tx.conn, origin)
    last = TreeHead(stored.tree_size, stored.root_hash) if stored else tlog.NEVER_COSIGNED
    when = times.to_text(tx.now)
    try:
        cosigned = witness.add_checkpoint(request, last, int(tx.now.timestamp()))
    except tlog.WitnessRefusal as refusal:
        if isinstance(refusal, tlog.InconsistentCheckpoint):
            sql.insert_refusal(tx.conn, WitnessRefusal(
                origin, _claimed_size(refusal, last), f"{refusal.reason}: {refusal.message}",
                request.checkpoint, when), MAX_REFUSED_NOTES)
        event = refusal_event(actor, REFUSED, [origin], digest, refusal)
        return refusal, [event]
    head = cosigned.tree_head
    sql.record_cosigned(tx.conn, WitnessedLog(origin, head.size, head.root_hash,
                                              request.checkpoint, when, cosigned.cosignature))
    return cosigned, []


def _claimed_size(refusal: tlog.InconsistentCheckpoint, last: TreeHead) -> int:
    """The size the refused checkpoint claims (its metadata says it), for finding it again."""
    return int(refusal.metadata.get("size", last.size))
