"""Audit operations of the SDK (mixed into agencies.client.AgencyClient and AdminClient).

The client keeps the last checkpoint it accepted in a state file beside its certificates
(`<certs>/audit-state.json`) and insists that every new checkpoint extends it: a gateway that
forks its log (shows different histories to different agencies) or truncates it is caught by the
agencies themselves, without trusting the gateway. The checkpoint verifier key is pinned on first
use in the same file, unless given explicitly (`client.audit_verifier_key = "name+id+key"`,
for instance the gateway's published `audit.vkey`) or by the network configuration held (the
key of the member at the client's address, whose log every checkpoint must then be, checked
against the member's witness policy: agencies/network.py). Threads and processes of one agency
share the file under a lock; the checkpoint saved never goes back to a smaller one.

Checkpoints are kept per origin. A gateway whose database was lost continues its log under a new
origin, whose first leaf (audit.new_origin) records the old origin's last signed checkpoint. The
client follows it only with the new origin's verifier key given explicitly (`audit_verifier_key`,
from the gateway's operator) or by the network configuration held: it proves the link leaf is
in the new log, verifies the recorded checkpoint with the old origin's pinned key and checks its
own saved one against it, then keeps the old origin's checkpoints in the state file
(`previous_origins`) as evidence.

Proofs hash the record bytes here, never taking the gateway's leaf hash on trust, and
`prove_receipt` checks that the event a fetch receipt names is that fetch's completion.

A receipt of a fetch from another region names a leaf of the owner's gateway's log, another
member's. With a network configuration held, the client reads that log through its own gateway
(`log_origin`, carried to the member on the agency's behalf) and trusts nothing the gateways
say of it: the checkpoint must be signed with that member's `audit_verifier_key` under its
`audit_origin` and meet that member's witness policy, all from the configuration, and extend
the checkpoint of that log saved before (kept per origin in the state file, `member_logs`,
checked for consistency as the client's own log is). A client holding no configuration cannot
know another log's key, and refuses such a receipt (RECEIPT_LOG_UNKNOWN).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from agencies.errors import GovshareError, VerificationError, WitnessQuorumNotReached
from agencies.exchange import FETCH_COMPLETE
from agencies.network import not_the_member
from certs.files import exclusive_lock, replace_file
from certs.identity import Identity
from gateway.v1 import audit_pb2, envelope_pb2, exchange_pb2, network_pb2
from govshare import envelopes, times
from govshare.transparency import merkle, note, record
from govshare.transparency.cosignature import QuorumError, WitnessPolicy

__all__ = ["STATE_FILE", "AuditMixin", "cosigned_by", "witness_policy"]

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
    audit_witness_policy: WitnessPolicy | None = None
    """The witnesses whose cosignatures a checkpoint needs, set to override the one the client
    applies by itself: with a network configuration held, the policy of its gateway's member
    (`witness_policy` of the configuration for the member's audit origin); with none held, a
    single gateway's checkpoint is checked as before. With a policy the client asks for the
    latest checkpoint a witness cosigned (the latest one may be too new for its witnesses to
    have seen), so proofs are of that checkpoint."""

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self, *, accept_unproven_origin: bool = False) -> note.Checkpoint:
        """The gateway's latest checkpoint, verified and proved to extend the last one seen.

        Raises VerificationError when the signature does not verify against the pinned key, or
        the log shrank (LOG_TRUNCATED) or does not contain the previously seen tree (LOG_FORKED).
        A log that moved to a new origin is followed as `_follow_origin` says; with
        `accept_unproven_origin` the client continues where the lost leaves leave unproven that
        the old origin's last checkpoint extends the one saved here (LOG_ORIGIN_UNPROVEN
        otherwise), and notes it in the state file.
        """
        member = self.network_member()
        policy = self._witness_policy(member)
        response = self._latest_checkpoint(policy)
        _check_member_log(response.signed_checkpoint, member, self.target)
        # Threads and processes of one agency share the state file: one at a time reads,
        # checks and saves it, so none checks against a checkpoint another is replacing.
        with self._audit_state_lock():
            state = self._audit_state()
            previous = state.get("checkpoint")
            if previous and _origin_line(response.signed_checkpoint) != \
                    _origin_line(previous):
                return self._follow_origin(state, response, accept_unproven_origin, member,
                                           policy)
            key = (self.audit_verifier_key or _member_key(member) or state.get("verifier_key")
                   or response.verifier_key)
            current = _open_checkpoint(response.signed_checkpoint, key)
            _check_policy(response.signed_checkpoint, policy)
            if self._check_against_saved(current, previous, key):
                self._save_audit_state({**state, "verifier_key": key,
                                        "checkpoint": response.signed_checkpoint})
        return current

    def _log_checkpoint(self, member: network_pb2.MemberGateway) -> note.Checkpoint:
        """The latest checkpoint of `member`'s log, another member's than the gateway's, read
        through the gateway: signed with the member's audit verifier key under its audit
        origin and cosigned by its witness policy's quorum, both from the configuration held,
        and proved to extend the checkpoint of that log saved before (`member_logs`)."""
        origin, key = member.audit_origin, member.audit_verifier_key
        policy = self._log_policy(origin)
        response = self._latest_checkpoint(policy, origin)
        current = _open_checkpoint(response.signed_checkpoint, key)
        if current.origin != origin:
            raise _refuse(f"the checkpoint served for log {origin!r} ({member.id}) is of"
                          f" {current.origin!r}", "CHECKPOINT_ORIGIN_MISMATCH",
                          log_origin=origin, origin=current.origin)
        _check_policy(response.signed_checkpoint, policy)
        with self._audit_state_lock():
            state = self._audit_state()
            logs = state.get("member_logs", {})
            saved = logs.get(origin, {})
            if self._check_against_saved(current, saved.get("checkpoint"),
                                         saved.get("verifier_key", key), origin):
                logs = {**logs, origin: {"verifier_key": key,
                                         "checkpoint": response.signed_checkpoint}}
                self._save_audit_state({**state, "member_logs": logs})
        return current

    def _check_against_saved(self, current: note.Checkpoint, saved: str | None, key: str,
                             log: str = "") -> bool:
        """Check `current` against the checkpoint `saved` of the same log (verified with
        `key`), proofs asked of `log` (empty: the gateway's own): True when `current` is to be
        saved in its place, False when the one saved is later."""
        if not saved:
            return True
        old = _open_checkpoint(saved, key)
        if current.size < old.size:
            # Another thread or process saved a later checkpoint after the log signed this
            # one: the log must still hold that one, grown from this one.
            self._check_extends(current, old, saved_later=True, log=log)
            return False
        self._check_extends(old, current, log=log)
        return True

    def signed_checkpoint(self, *, witnessed: bool = False) -> audit_pb2.GetCheckpointResponse:
        """The gateway's latest signed checkpoint as it serves it (with `witnessed`, the latest
        one a witness cosigned, with the cosignature lines it holds), NOT verified: for showing
        what a gateway serves, such as who cosigned it (`cosigned_by`); `checkpoint()` is the
        one to rely on."""
        request = audit_pb2.GetCheckpointRequest(witnessed=witnessed)
        return self._call(self.audit.GetCheckpoint, request)

    def _witness_policy(self, member: network_pb2.MemberGateway | None) -> WitnessPolicy | None:
        """The policy set, else the one of the configuration held for `member`'s log."""
        if self.audit_witness_policy is not None or member is None:
            return self.audit_witness_policy
        configuration = self.network_configuration()
        return witness_policy(configuration.configuration, member.audit_origin)

    def _log_policy(self, log: str) -> WitnessPolicy | None:
        """The witness policy applied to `log` (empty: the gateway's own, whose policy the
        application may set); another member's is the configuration's for it."""
        if not log:
            return self._witness_policy(self.network_member())
        configuration = self.network_configuration()
        assert configuration is not None  # another member's log is read with one held
        return witness_policy(configuration.configuration, log)

    def _latest_checkpoint(self, policy: WitnessPolicy | None,
                           log: str = "") -> audit_pb2.GetCheckpointResponse:
        """The latest checkpoint of `log` (empty: the gateway's own); with a witness policy,
        the latest one a witness cosigned (WitnessQuorumNotReached when none is)."""
        request = audit_pb2.GetCheckpointRequest(witnessed=policy is not None, log_origin=log)
        try:
            return self._call(self.audit.GetCheckpoint, request)
        except GovshareError as exc:
            if policy is None or exc.reason != "NO_WITNESSED_CHECKPOINT":
                raise
            raise WitnessQuorumNotReached(
                f"no witness has cosigned a checkpoint of {_log_named(log)} yet;"
                f" {policy.quorum} of the policy's witnesses are needed: ask again later",
                reason="WITNESS_QUORUM_NOT_REACHED",
                metadata={"cosigned": "", "quorum": str(policy.quorum)}) from None

    def _follow_origin(self, state: dict[str, Any], response: audit_pb2.GetCheckpointResponse,
                       accept_unproven: bool, member: network_pb2.MemberGateway | None,
                       policy: WitnessPolicy | None) -> note.Checkpoint:
        """Move to the new origin of `response` from the saved one: verify the new checkpoint
        with the key of that origin given explicitly or by the configuration held, prove the
        origin's link leaf under it, verify the checkpoint it records with the old origin's
        pinned key and check the saved checkpoint against it; then save the new origin's state,
        the old one's kept."""
        old_key, saved_signed = state["verifier_key"], state["checkpoint"]
        saved = _open_checkpoint(saved_signed, old_key)
        origin = _origin_line(response.signed_checkpoint)
        if origin in {entry["origin"] for entry in state.get("previous_origins", [])}:
            raise _refuse(f"the audit log went back from {saved.origin!r} to {origin!r}, an"
                          " origin it left: a log never signs an origin again",
                          "LOG_ORIGIN_CHANGED", old=saved.origin, new=origin)
        key = self._new_origin_key(saved.origin, origin, member)
        current = _open_checkpoint(response.signed_checkpoint, key)
        _check_policy(response.signed_checkpoint, policy)
        link, ended_signed = self._linked_checkpoint(response, saved.origin, current)
        ended = _open_checkpoint(ended_signed, old_key)
        unproven = self._check_continues(saved, ended, current, link.leaf_index)
        if unproven and not accept_unproven:
            raise _refuse(f"{unproven}; call checkpoint(accept_unproven_origin=True) to continue"
                          f" on {origin!r} regardless (the state file keeps what was unproven)",
                          "LOG_ORIGIN_UNPROVEN", origin=origin, saved_size=saved.size,
                          recorded_size=ended.size)
        evidence = {"origin": saved.origin, "verifier_key": old_key, "checkpoint": saved_signed,
                    "ended_with": ended_signed, "link_leaf_index": link.leaf_index,
                    "unproven": unproven}
        self._save_audit_state({
            **state, "verifier_key": key, "checkpoint": response.signed_checkpoint,
            "previous_origins": [*state.get("previous_origins", []), evidence],
        })
        return current

    def _new_origin_key(self, old_origin: str, origin: str,
                        member: network_pb2.MemberGateway | None) -> str:
        """The verifier key of `origin` given explicitly, or by the configuration held for the
        member: a key pinned from the gateway itself would take the gateway's word for its own
        new identity."""
        key = self.audit_verifier_key or _member_key(member)
        if key is None or _key_name(key) != origin:
            raise _refuse(
                f"the audit log changed origin from {old_origin!r} to {origin!r}: get the new"
                f" origin's verifier key (the gateway's audit.vkey, {origin}+...) from the"
                " gateway's operator and set it as audit_verifier_key to follow the change",
                "LOG_ORIGIN_CHANGED", old=old_origin, new=origin)
        return key

    def _linked_checkpoint(self, response: audit_pb2.GetCheckpointResponse, old_origin: str,
                           current: note.Checkpoint) -> tuple[audit_pb2.AuditEvent, str]:
        """The new origin's link leaf and the signed checkpoint of `old_origin` it records,
        once the leaf's bytes are proved to be in `current`."""
        link = response.origin_link
        if not response.HasField("origin_link"):
            raise _refuse(f"the gateway's log moved from {old_origin!r} to {current.origin!r}"
                          " but shows no audit.new_origin leaf linking them",
                          "ORIGIN_LINK_INVALID", old=old_origin, new=current.origin)
        fields = _record_fields(link.record, link.leaf_index, "ORIGIN_LINK_INVALID")
        recorded = fields.get("reason")
        if fields.get("action") != record.NEW_ORIGIN or not isinstance(recorded, str) or \
                _origin_line(recorded) != old_origin:
            raise _refuse(f"audit event {link.leaf_index} does not link {old_origin!r} to"
                          f" {current.origin!r}: it is no audit.new_origin leaf recording a"
                          f" checkpoint of {old_origin!r}", "ORIGIN_LINK_INVALID",
                          leaf_index=link.leaf_index)
        self._prove_in(current, link.leaf_index, link.record)
        return link, recorded

    def _check_continues(self, saved: note.Checkpoint, ended: note.Checkpoint,
                         current: note.Checkpoint, link_index: int) -> str:
        """Check the saved checkpoint of the old origin against `ended`, the last one the old
        origin signed (as the link leaf at `link_index` records it). Raises VerificationError
        for what is proven wrong; returns what cannot be proven ("" when nothing)."""
        if saved.size > ended.size:
            raise _refuse(
                f"the old origin {saved.origin!r} signed a checkpoint of {saved.size} entries"
                f" seen here, but the new origin records its last one as {ended.size}: the"
                " old log's history was truncated", "LOG_TRUNCATED",
                old_size=saved.size, new_size=ended.size)
        if saved.size == ended.size:
            self._check_extends(saved, ended)  # the same tree: the same root
            return ""
        if saved.size <= link_index:
            # The leaves seen here are all before the link: the new log must begin with them.
            self._check_extends(dataclasses.replace(saved, origin=current.origin), current)
        return (f"the old origin {saved.origin!r} ended at {ended.size} entries, but the"
                f" gateway lost the leaves that would prove it extends the {saved.size} seen"
                f" here (its log keeps {link_index} of them)")

    def _check_extends(self, old: note.Checkpoint, new: note.Checkpoint,
                       saved_later: bool = False, log: str = "") -> None:
        """Raise VerificationError unless `new` is `old` or a tree grown from it, the proof
        asked of `log` (empty: the gateway's own). With `saved_later`, `new` is the saved
        checkpoint, and a log that no longer reaches its size (so cannot prove it) was
        truncated."""
        if new.origin != old.origin:
            raise _refuse(f"the log's origin changed from {old.origin!r} to {new.origin!r}",
                          "LOG_ORIGIN_CHANGED", old=old.origin, new=new.origin)
        if new.size < old.size:
            raise _truncated(old.size, new.size)
        if old.size == 0:
            return
        hashes: list[bytes] = []
        if new.size > old.size:
            request = audit_pb2.GetConsistencyProofRequest(first_size=old.size,
                                                          second_size=new.size, log_origin=log)
            try:
                hashes = list(self._call(self.audit.GetConsistencyProof, request).hashes)
            except GovshareError as exc:
                if saved_later and exc.code == grpc.StatusCode.OUT_OF_RANGE:
                    raise _truncated(new.size, old.size) from None
                raise
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
        """Prove that the exact bytes `record` are leaf `leaf_index` of the current verified
        checkpoint. Without `record`, the event's record is fetched (GetAuditEvent: the caller
        must be allowed to read it) and hashed here: a leaf hash the gateway supplied would
        prove only that the log has a leaf there. Raises VerificationError if the proof fails.
        """
        if record is None:
            record = self.audit_event(leaf_index).record
        return self._prove(leaf_index, record)[0]

    def _prove(self, leaf_index: int, record: bytes) \
            -> tuple[audit_pb2.GetInclusionProofResponse, note.Checkpoint]:
        """The proof that `record` is leaf `leaf_index`, and the verified checkpoint it is in."""
        checkpoint = self.checkpoint()
        return self._prove_in(checkpoint, leaf_index, record), checkpoint

    def _prove_in(self, checkpoint: note.Checkpoint, leaf_index: int, record: bytes,
                  log: str = "") -> audit_pb2.GetInclusionProofResponse:
        """The proof that `record` is leaf `leaf_index` of the verified `checkpoint` of `log`
        (empty: the gateway's own). With a witness policy, WitnessQuorumNotReached when the leaf
        is beyond it: a checkpoint the policy takes lags the log by a witnessing round."""
        if leaf_index >= checkpoint.size and self._log_policy(log) is not None:
            raise WitnessQuorumNotReached(
                f"leaf {leaf_index} is not in the latest checkpoint of {_log_named(log)} taken"
                f" (size {checkpoint.size}): its witnesses have not cosigned one holding it"
                " yet; ask again later", reason="LEAF_NOT_YET_WITNESSED",
                metadata={"leaf_index": str(leaf_index), "tree_size": str(checkpoint.size)})
        request = audit_pb2.GetInclusionProofRequest(leaf_index=leaf_index,
                                                     tree_size=checkpoint.size, log_origin=log)
        proof = self._call(self.audit.GetInclusionProof, request)
        leaf = merkle.leaf_hash(record)
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

    def prove_receipt(self, signed_receipt: envelope_pb2.Envelope) -> audit_pb2.AuditEvent:
        """Prove that the log records the fetch a receipt vouches for (`Fetched.signed_receipt`,
        verified by the fetch): the event at its audit_leaf_index must be the completion
        (exchange.fetch.complete) of its exchange by this agency naming this very receipt
        (carried by this client's member when the log is another's), and its record bytes must
        be that leaf of a verified checkpoint of the receipt's log: the gateway's own, or with
        a network configuration held, the log of the member that signed the receipt, read
        through the gateway (see the module docstring). Returns the event; raises
        VerificationError (RECEIPT_NOT_LOGGED, or RECEIPT_LOG_UNKNOWN for another log without
        a configuration) otherwise, WitnessQuorumNotReached while the log's witnesses have not
        cosigned a checkpoint holding the leaf."""
        receipt = exchange_pb2.Receipt.FromString(signed_receipt.payload)
        index = receipt.audit_leaf_index
        member = self._receipt_member(signed_receipt, receipt)
        log = member.audit_origin if member is not None else ""
        checkpoint = self._log_checkpoint(member) if member is not None else self.checkpoint()
        if receipt.audit_log_origin != checkpoint.origin:
            raise _refuse(
                f"the receipt names log {receipt.audit_log_origin!r}, but the gateway's log is"
                f" {checkpoint.origin!r}; holding no network configuration, the client cannot"
                " know another log's key: build the client with the network's configuration",
                "RECEIPT_LOG_UNKNOWN", leaf_index=index, log_origin=receipt.audit_log_origin)
        event = self.audit_event(index, log_origin=log)
        fields = _record_fields(event.record, index)
        via = Identity("gateway", self.network_member().id).uri if member is not None else ""
        checks = {
            "payload type": signed_receipt.payload_type == envelopes.RECEIPT,
            "action": fields.get("action") == FETCH_COMPLETE,
            "outcome": fields.get("outcome") == record.ALLOWED,
            "actor": fields.get("actor") == self.identity.uri,
            "via": fields.get("via", "") == via,
            "exchange": fields.get("resources", [])[:1] == [receipt.exchange],
            "receipt": envelopes.envelope_id(signed_receipt) in fields.get("envelopes", []),
        }
        wrong = [what for what, ok in checks.items() if not ok]
        if wrong:
            raise _refuse(
                f"audit event {index}, named by the receipt of {receipt.exchange}, is not that"
                f" exchange's completion by {self.identity.uri}: its {', '.join(wrong)} differ",
                "RECEIPT_NOT_LOGGED", leaf_index=index, mismatch=",".join(wrong),
            )
        self._prove_in(checkpoint, index, event.record, log)
        return event

    def _receipt_member(self, signed_receipt: envelope_pb2.Envelope,
                        receipt: exchange_pb2.Receipt) -> network_pb2.MemberGateway | None:
        """The member whose log a receipt names when it is another member's than this
        client's gateway's (a fetch relayed from another region): the member that signed the
        receipt, whose log it must be. None for the gateway's own log, and while no network
        configuration is held."""
        own = self.network_member()
        if own is None or receipt.audit_log_origin == own.audit_origin:
            return None
        signing = self._signing_member(signed_receipt, "receipt")
        assert signing is not None  # a configuration is held
        signer = signing.member
        if receipt.audit_log_origin != signer.audit_origin:
            raise _refuse(
                f"the receipt signed by {signer.id} names log {receipt.audit_log_origin!r},"
                f" neither {signer.id}'s ({signer.audit_origin!r}) nor {own.id}'s",
                "RECEIPT_NOT_LOGGED", leaf_index=receipt.audit_leaf_index, mismatch="origin")
        return signer

    def audit_event(self, leaf_index: int, *, log_origin: str = "") -> audit_pb2.AuditEvent:
        """One audit event by leaf index, of the gateway's log or, by its `log_origin`, of
        another member's log, read through the gateway (NOT verified: `prove_receipt`)."""
        request = audit_pb2.GetAuditEventRequest(name=f"auditEvents/{leaf_index}",
                                                 log_origin=log_origin)
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

    @contextlib.contextmanager
    def _audit_state_lock(self) -> Iterator[None]:
        """Hold the state file's lock (a lock file beside it; flock excludes other threads'
        descriptors as well as other processes)."""
        path = self._audit_state_path()
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(exclusive_lock(path.with_name(f".{path.name}.lock")))
            except OSError as exc:
                raise _unwritable(path, exc) from None
            yield

    def _save_audit_state(self, state: dict[str, Any]) -> None:
        """Replace the state file atomically, so a crash never leaves half a checkpoint."""
        path = self._audit_state_path()
        try:
            replace_file(path, (json.dumps(state, indent=2) + "\n").encode(), mode=0o600)
        except OSError as exc:
            raise _unwritable(path, exc) from None


def _truncated(old_size: int, new_size: int) -> VerificationError:
    return _refuse(
        f"the audit log shrank from {old_size} to {new_size} entries: it was truncated",
        "LOG_TRUNCATED", old_size=old_size, new_size=new_size,
    )


def _unwritable(path: Path, exc: OSError) -> VerificationError:
    return _refuse(
        f"cannot save the audit state {path} ({exc.strerror or exc}): make its folder writable,"
        " or set audit_state_file to a writable path",
        "AUDIT_STATE_UNWRITABLE", path=path,
    )


def _record_fields(data: bytes, leaf_index: int,
                   reason: str = "RECEIPT_NOT_LOGGED") -> dict[str, Any]:
    """The fields of a record as its bytes say (not as the gateway decoded them)."""
    try:
        fields = record.decode(data)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        raise _refuse(f"audit event {leaf_index} holds no valid record", reason,
                      leaf_index=leaf_index, mismatch="record")
    return fields


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


def witness_policy(configuration: network_pb2.NetworkConfiguration,
                   origin: str) -> WitnessPolicy | None:
    """The witness policy of the log `origin` in a (verified) network configuration: the other
    members' witness keys and the configuration's quorum; None when it asks for none."""
    quorum = configuration.witness_policy.quorum
    keys = [m.witness_verifier_key for m in configuration.members if m.audit_origin != origin]
    return WitnessPolicy(keys, quorum) if quorum else None


def check_witnessed(signed: str, policy: WitnessPolicy) -> None:
    """WitnessQuorumNotReached unless `policy`'s quorum of witnesses cosigned `signed`, naming
    those that did."""
    try:
        policy.check(signed.encode())
    except QuorumError:
        cosigned = cosigned_by(signed, policy)
        raise WitnessQuorumNotReached(
            f"the checkpoint of {_origin_line(signed)!r} is cosigned by {len(cosigned)} of the"
            f" policy's witnesses ({', '.join(cosigned) or 'none'}); {policy.quorum} are"
            " needed: its witnesses have not seen it yet (ask again later), or refused it",
            reason="WITNESS_QUORUM_NOT_REACHED",
            metadata={"cosigned": ",".join(cosigned), "quorum": str(policy.quorum)}) from None
    except note.NoteError as exc:
        raise _refuse(f"a witness cosignature of the checkpoint of {_origin_line(signed)!r}"
                      f" does not verify: {exc}", "COSIGNATURE_INVALID") from None


def cosigned_by(signed: str, policy: WitnessPolicy) -> list[str]:
    """The verifier keys of `policy`'s witnesses whose cosignature of the checkpoint `signed`
    is among its lines and verifies."""
    return [witness for witness in policy.witnesses if _cosigned_by(signed, witness)]


def _cosigned_by(signed: str, witness: str) -> bool:
    try:
        WitnessPolicy([witness], 1).check(signed.encode())
    except note.NoteError:
        return False
    return True


def _check_policy(signed: str, policy: WitnessPolicy | None) -> None:
    """WitnessQuorumNotReached when there is a policy and its quorum did not cosign `signed`:
    on a new origin as on the old one, or a log could leave its witnesses behind by moving to
    an origin they never saw."""
    if policy is not None:
        check_witnessed(signed, policy)


def _member_key(member: network_pb2.MemberGateway | None) -> str | None:
    return member.audit_verifier_key if member is not None else None


def _check_member_log(signed: str, member: network_pb2.MemberGateway | None,
                      target: str) -> None:
    """GatewayNotMember unless `signed` is a checkpoint of `member`'s log (when a configuration
    is held): of its audit origin, signed with its audit verifier key."""
    if member is None:
        return
    origin = _origin_line(signed)
    if origin != member.audit_origin:
        raise not_the_member(target, member, f"its audit log is {origin!r}, the member's is"
                                             f" {member.audit_origin!r}")
    try:
        note.open_note(signed.encode(),
                       [note.NoteVerifier.from_verifier_key(member.audit_verifier_key)])
    except (ValueError, note.NoteError):
        raise not_the_member(target, member, "its checkpoint is not signed with the member's"
                                             " audit verifier key") from None


def _log_named(log: str) -> str:
    """How a message names the log `log` (empty: the gateway's own)."""
    return f"log {log!r}" if log else "the gateway's log"


def _origin_line(signed: str) -> str:
    """The origin a signed checkpoint names (its first line), readable before it verifies."""
    return signed.partition("\n")[0]


def _key_name(verifier_key: str) -> str:
    """The name (the origin) a note verifier key "name+id+key" is for: names hold no '+'."""
    return verifier_key.partition("+")[0]
