"""Audit operations of the SDK (mixed into agencies.client.AgencyClient and AdminClient).

The client keeps the last checkpoint it accepted in a state file beside its certificates
(`<certs>/audit-state.json`) and insists that every new checkpoint extends it: a gateway that
forks its log (shows different histories to different agencies) or truncates it is caught by the
agencies themselves, without trusting the gateway. The checkpoint verifier key is pinned on first
use in the same file, unless given explicitly (`client.audit_verifier_key = "name+id+key"`,
for instance the gateway's published `audit.vkey`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from agencies.errors import VerificationError
from gateway import times
from gateway.audit import merkle, note
from gateway.v1 import audit_pb2

STATE_FILE = "audit-state.json"


def _refuse(message: str, reason: str, **metadata: object) -> VerificationError:
    return VerificationError(message, reason=reason,
                             metadata={key: str(value) for key, value in metadata.items()})


class AuditMixin:
    """Audit calls; relies on BaseClient's _call/_pages, `certs` and the `audit` stub."""

    audit_verifier_key: str | None = None
    """The gateway's note verifier key to trust; None pins the first one seen."""
    audit_state_file: Path | None = None
    """Where the last accepted checkpoint is kept; None means `<certs>/audit-state.json`."""

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self) -> note.Checkpoint:
        """The gateway's latest checkpoint, verified and proved to extend the last one seen.

        Raises VerificationError when the signature does not verify against the pinned key, or
        the log shrank (LOG_TRUNCATED) or does not contain the previously seen tree (LOG_FORKED).
        """
        response = self._call(self.audit.GetCheckpoint, audit_pb2.GetCheckpointRequest())
        state = self._audit_state()
        key = self.audit_verifier_key or state.get("verifier_key") or response.verifier_key
        current = _open_checkpoint(response.signed_checkpoint, key)
        previous = state.get("checkpoint")
        if previous:
            self._check_extends(_open_checkpoint(previous, key), current)
        self._save_audit_state(
            {"verifier_key": key, "checkpoint": response.signed_checkpoint}
        )
        return current

    def _check_extends(self, old: note.Checkpoint, new: note.Checkpoint) -> None:
        """Raise VerificationError unless `new` is `old` or a tree grown from it."""
        if new.origin != old.origin:
            raise _refuse(f"the log's origin changed from {old.origin!r} to {new.origin!r}",
                          "LOG_ORIGIN_CHANGED", old=old.origin, new=new.origin)
        if new.size < old.size:
            raise _refuse(
                f"the audit log shrank from {old.size} to {new.size} entries: it was truncated",
                "LOG_TRUNCATED", old_size=old.size, new_size=new.size,
            )
        if old.size == 0:
            return
        hashes: list[bytes] = []
        if new.size > old.size:
            request = audit_pb2.GetConsistencyProofRequest(first_size=old.size,
                                                          second_size=new.size)
            hashes = list(self._call(self.audit.GetConsistencyProof, request).hashes)
        try:
            merkle.verify_consistency(old.size, new.size, hashes, old.root_hash, new.root_hash)
        except merkle.ProofError as exc:
            raise _refuse(
                f"the audit log of {new.size} entries does not extend the one of {old.size}"
                f" seen before ({exc}): the log was forked or rewritten",
                "LOG_FORKED", old_size=old.size, new_size=new.size,
            ) from None

    # -- proofs and events -------------------------------------------------------------------

    def prove_inclusion(
        self, leaf_index: int, record: bytes | None = None
    ) -> audit_pb2.GetInclusionProofResponse:
        """Prove leaf `leaf_index` is in the current verified checkpoint; with `record`, prove
        that these exact bytes are that leaf. Raises VerificationError if the proof fails."""
        checkpoint = self.checkpoint()
        request = audit_pb2.GetInclusionProofRequest(leaf_index=leaf_index,
                                                     tree_size=checkpoint.size)
        proof = self._call(self.audit.GetInclusionProof, request)
        leaf = merkle.leaf_hash(record) if record is not None else proof.leaf_hash
        if leaf != proof.leaf_hash:
            raise _refuse(f"the record is not leaf {leaf_index}: its hash differs",
                          "LEAF_HASH_MISMATCH", leaf_index=leaf_index)
        try:
            merkle.verify_inclusion(leaf, leaf_index, checkpoint.size, proof.hashes,
                                    checkpoint.root_hash)
        except merkle.ProofError as exc:
            raise _refuse(f"inclusion proof of leaf {leaf_index} failed: {exc}",
                          "INCLUSION_PROOF_INVALID", leaf_index=leaf_index) from None
        return proof

    def audit_event(self, leaf_index: int) -> audit_pb2.AuditEvent:
        """One audit event by leaf index."""
        request = audit_pb2.GetAuditEventRequest(name=f"auditEvents/{leaf_index}")
        return self._call(self.audit.GetAuditEvent, request).audit_event

    def audit_events(
        self,
        *,
        actor: str = "",
        agency: str = "",
        dataset: str = "",
        action: str = "",
        outcome: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int = 0,
    ) -> Iterator[audit_pb2.AuditEvent]:
        """The audit events visible to this caller matching every filter, oldest first.

        `outcome` is "ALLOWED" or "REFUSED"; times are aware datetimes ([start, end)).
        """
        request = audit_pb2.ListAuditEventsRequest(
            actor=actor, agency=agency, dataset=dataset, action=action, page_size=page_size,
            outcome=audit_pb2.Outcome.Value(f"OUTCOME_{outcome}") if outcome else 0,
            start_time=times.to_timestamp(start_time), end_time=times.to_timestamp(end_time),
        )
        return self._pages(self.audit.ListAuditEvents, request, "audit_events")

    # -- state -------------------------------------------------------------------------------

    def _audit_state_path(self) -> Path:
        return self.audit_state_file or Path(self.certs) / STATE_FILE

    def _audit_state(self) -> dict[str, Any]:
        path = self._audit_state_path()
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise _refuse(f"cannot read the saved audit state {path}: {exc}",
                          "AUDIT_STATE_UNREADABLE", path=path) from None

    def _save_audit_state(self, state: dict[str, Any]) -> None:
        """Replace the state file atomically, so a crash never leaves half a checkpoint."""
        path = self._audit_state_path()
        scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        scratch.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(scratch, path)


def _open_checkpoint(signed: str, verifier_key: str) -> note.Checkpoint:
    """The checkpoint in a signed note, once its signature verifies against `verifier_key`."""
    try:
        verifier = note.NoteVerifier.from_verifier_key(verifier_key)
        return note.Checkpoint.parse(note.open_note(signed.encode(), [verifier]))
    except (ValueError, note.NoteError) as exc:
        raise _refuse(
            f"the gateway's checkpoint does not verify against the pinned key: {exc}",
            "CHECKPOINT_SIGNATURE_INVALID", verifier_key=verifier_key,
        ) from None
