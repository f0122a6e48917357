"""Evidence of misbehaviour the network showed this gateway: two statements signed by one key
that cannot both be true. Two checkpoints of one member's log that are not one history (the
log showed one history to some witnesses and another to others, or went back), or two network
configurations of one version (an authority never signs two). gateway/gossip.py finds them by
comparing what the peers cosigned and hold with this gateway's own view; gateway/witness.py
when a log's key signed a checkpoint of the size this witness cosigned with another root.

Each pair is kept with both signed statements, which anyone can check with the keys of the
network configuration, and audited in the same transaction: `network.fork_detected`,
`network.configuration_equivocation`, the gateway as actor, the subject (a log's origin, or
the configuration) as resource, the statements' SHA-256 digests as envelope ids. A pair is kept
and audited once, however often the network shows it, and at most MAX_PER_SUBJECT pairs a
subject, so that a misbehaving member cannot make this gateway store or log without end.
"""

from __future__ import annotations

import dataclasses
import logging

from gateway.models import Evidence
from gateway.storage import witness as sql
from gateway.unit_of_work import Tx, UnitOfWork
from govshare import signing, times
from govshare.transparency import note, record

log = logging.getLogger("govshare.gossip")

FORK_SAME_SIZE = "FORK_SAME_SIZE"
"""A log signed two checkpoints of one size with different roots."""
FORK_NOT_CONSISTENT = "FORK_NOT_CONSISTENT"
"""A log cannot prove that the smaller of two checkpoints it signed is a prefix of the larger:
a consistency proof that fails, or a tree that does not reach the larger size (rolled back)."""
CONFIGURATION_EQUIVOCATION = "CONFIGURATION_EQUIVOCATION"
"""The network authority signed two configurations of one version."""
ACTIONS = {FORK_SAME_SIZE: "network.fork_detected", FORK_NOT_CONSISTENT: "network.fork_detected",
           CONFIGURATION_EQUIVOCATION: "network.configuration_equivocation"}
"""The audit action of each kind of evidence."""
MAX_PER_SUBJECT = 8
"""Pairs kept per log or for the configuration: one proves the misbehaviour, a few show its
course."""


class NetworkEvidence:
    """Keeps and audits the evidence found, as the gateway `actor`."""

    def __init__(self, work: UnitOfWork, actor: str):
        self._work = work
        self._actor = actor

    def record(self, evidence: Evidence) -> bool:
        """Keep and audit `evidence` (its create_time is the commit's); False when its pair is
        kept already, or MAX_PER_SUBJECT of its subject are."""
        def change(tx: Tx) -> tuple[bool, list[record.Event]]:
            events = keep(tx, evidence, self._actor)
            return bool(events), events

        kept = self._work.commit(change).value
        if kept:
            logged(evidence)
        return kept

    def found(self) -> list[Evidence]:
        """Every pair kept, oldest first."""
        return sql.evidence(self._work.db.reader())


def keep(tx: Tx, evidence: Evidence, actor: str) -> list[record.Event]:
    """Keep `evidence` in `tx`, its create_time the transaction's; the event auditing it, as
    `actor`, to commit with it ([] when its pair is kept already, or MAX_PER_SUBJECT of its
    subject are)."""
    now = times.to_text(tx.now)
    if not sql.insert_evidence(tx.conn, dataclasses.replace(evidence, create_time=now),
                               MAX_PER_SUBJECT):
        return []
    return [record.Event(
        actor, ACTIONS[evidence.kind], resources=(evidence.subject,),
        reason=f"{evidence.kind}: {evidence.reason}",
        envelope_ids=tuple(signing.sha256(statement).hex()
                           for statement in (evidence.first, evidence.second)),
        time=now)]


def logged(evidence: Evidence) -> None:
    """Log `evidence`, once kept, as the error it is."""
    log.error("[network] %s: %s", evidence.kind, evidence.reason)


def checkpoint_pair(origin: str, a: note.Checkpoint, b: note.Checkpoint) -> str:
    """What identifies a pair of checkpoints of the log `origin`, in either order."""
    heads = sorted(f"{c.size}:{c.root_hash.hex()}" for c in (a, b))
    return f"{origin} {' '.join(heads)}"
