"""A witness's decision on a log's new checkpoint: C2SP tlog-witness, `add-checkpoint`.

Pure and storage-agnostic: `Witness.add_checkpoint` takes the request, the tree head the
witness last cosigned for the checkpoint's origin (`NEVER_COSIGNED` if none) and the time,
and returns the cosignature with the tree head to record, or raises one of the spec's answers
as a typed `WitnessRefusal`. The spec asks that reading the last tree head and recording the
new one be atomic (else two concurrent requests could roll a log back): the caller does both in
one transaction, or records with a compare-and-set on the tree head it read.

`AddCheckpoint` parses and formats the request body (``old N``, proof lines, a blank line, the
checkpoint note), for the HTTP form ``POST /add-checkpoint``. Status codes follow the spec's
current text: equal sizes with different roots answer 422 (v1.0.0 said 409).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from govshare import errors
from govshare.transparency.cosignature import CosignatureSigner
from govshare.transparency.merkle import EMPTY_ROOT, HASH_SIZE, ProofError, verify_consistency
from govshare.transparency.note import (
    Checkpoint,
    NoteError,
    NoteVerifier,
    open_note,
    parse_decimal,
    unverified_text,
)

MAX_PROOF_LINES = 63
"""Consistency proof lines a request may carry (the spec's bound: a proof in a tree of up to
2**64 leaves has fewer)."""

SIZE_CONTENT_TYPE = "text/x.tlog.size"
"""Content type of a conflict's body over HTTP: the witness's size in decimal and a newline."""


class WitnessRefusal(errors.GatewayError):
    """A witness declines to cosign; `http_status` is the spec's answer in its HTTP form."""

    http_status: int


class MalformedRequest(WitnessRefusal, errors.InvalidArgument):
    """The request body, its checkpoint, or its sizes make no sense (old size above the
    checkpoint's)."""

    reason = "WITNESS_REQUEST_MALFORMED"
    http_status = 400


class UnknownLog(WitnessRefusal, errors.NotFound):
    """The witness follows no log of the checkpoint's origin."""

    reason = "WITNESS_UNKNOWN_LOG"
    http_status = 404


class UnsignedCheckpoint(WitnessRefusal, errors.PermissionDenied):
    """The checkpoint carries no valid signature of its log's key (or a bad one)."""

    reason = "WITNESS_CHECKPOINT_NOT_SIGNED"
    http_status = 403


class SizeConflict(WitnessRefusal, errors.Aborted):
    """The request's old size is not the size the witness last cosigned; `size` is that size,
    which the client uses to build the right proof and retry."""

    reason = "WITNESS_SIZE_CONFLICT"
    http_status = 409

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message, witness_size=size)
        self.size = size

    @property
    def body(self) -> bytes:
        """The HTTP response body the spec fixes, of type `SIZE_CONTENT_TYPE`."""
        return b"%d\n" % self.size


class InconsistentCheckpoint(WitnessRefusal, errors.FailedPrecondition):
    """The checkpoint is not proved to extend the tree the witness cosigned: the proof fails,
    or the same size has another root. Possibly a forked log: worth recording."""

    reason = "WITNESS_CONSISTENCY_UNPROVED"
    http_status = 422


def _decode_hash(line: str) -> bytes:
    """A proof line's bytes. Any length passes here so that a short hash is the proof's
    failure (422), as the published vectors expect; and non-zero padding bits are accepted, as
    Go's decoder does, since the hash bytes, not their spelling, are what gets verified."""
    try:
        return binascii.a2b_base64(line.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        raise MalformedRequest("a consistency proof line is not base64") from None


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: the size the client believes the witness holds, the
    consistency proof from there, and the signed checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpoint:
        """Strict parse of a request body; MalformedRequest (400) if it is not one."""
        head, separator, checkpoint = body.partition(b"\n\n")
        try:
            old_line, *proof_lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError:
            raise MalformedRequest("the old size and proof lines must be ASCII") from None
        if not separator or not old_line.startswith("old "):
            raise MalformedRequest("the body must start with 'old <size>', then proof lines, "
                                   "an empty line and the checkpoint")
        if len(proof_lines) > MAX_PROOF_LINES:
            raise MalformedRequest(f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            old_size = parse_decimal(old_line.removeprefix("old "))
        except ValueError as exc:
            raise MalformedRequest(f"old size: {exc}") from None
        return cls(old_size, tuple(map(_decode_hash, proof_lines)), checkpoint)

    def to_bytes(self) -> bytes:
        """The request body, as `parse` reads it."""
        lines = [f"old {self.old_size}\n".encode("ascii")]
        lines += [base64.b64encode(h) + b"\n" for h in self.proof]
        return b"".join(lines) + b"\n" + self.checkpoint

    @property
    def origin(self) -> str:
        """The checkpoint's origin line, unverified: it says which log's key and recorded tree
        head to decide with. MalformedRequest if the checkpoint is not a note."""
        try:
            return unverified_text(self.checkpoint).partition("\n")[0]
        except NoteError:
            raise MalformedRequest("the checkpoint is not a signed note") from None


@dataclass(frozen=True)
class TreeHead:
    """What a witness records per log: the size and root hash it last cosigned."""

    size: int
    root_hash: bytes


NEVER_COSIGNED = TreeHead(0, EMPTY_ROOT)
"""The tree head of a log never cosigned: the spec counts it as size 0, and the empty tree's
root is the only root a size-0 checkpoint may carry."""


@dataclass(frozen=True)
class WitnessedLog:
    """A log the witness follows: checkpoints of ``origin`` must carry ``key``'s signature (the
    key's name may differ from the origin)."""

    origin: str
    key: NoteVerifier


@dataclass(frozen=True)
class Cosigned:
    """The witness cosigned: the response line, and the tree head to record for the origin."""

    cosignature: str
    """The signature line ``— <witness> <base64>\\n``: the body of the HTTP answer."""
    tree_head: TreeHead
    checkpoint: Checkpoint


class Witness:
    """One witness's decisions for the logs it follows, cosigning with ``signer``."""

    __slots__ = ("_logs", "signer")

    def __init__(self, signer: CosignatureSigner, logs: Iterable[WitnessedLog]) -> None:
        self.signer = signer
        self._logs = {log.origin: log for log in logs}

    def add_checkpoint(self, request: AddCheckpoint, last: TreeHead, now: int) -> Cosigned:
        """Cosign ``request``'s checkpoint at time ``now`` (seconds since the epoch) if it
        extends ``last``, the tree head recorded for its origin; raise the spec's answer if not.

        Checklist, in the spec's order, failing at the first problem:
        1. the origin is a log this witness follows (404);
        2. the log's key signed the checkpoint, and no line of that key fails (403);
        3. the old size is at most the checkpoint's size (400);
        4. the old size is the size last cosigned (409, with that size);
        5. the checkpoint extends the tree last cosigned: same size, same root; from size 0,
           an empty proof; otherwise a consistency proof that verifies (422).
        """
        log = self._logs.get(request.origin)
        if log is None:
            raise UnknownLog(f"this witness follows no log of origin {request.origin!r}",
                             origin=request.origin)
        checkpoint = self._signed_checkpoint(log, request.checkpoint)
        if request.old_size > checkpoint.size:
            raise MalformedRequest(f"old size {request.old_size} is above the checkpoint's "
                                   f"size {checkpoint.size}", old_size=request.old_size,
                                   size=checkpoint.size)
        if request.old_size != last.size:
            raise SizeConflict(f"old size {request.old_size} is not the size this witness "
                               f"last cosigned for {log.origin!r}, {last.size}: prove "
                               f"consistency from {last.size}", size=last.size)
        _check_extends(last, checkpoint, request.proof)
        body = checkpoint.to_text().encode("utf-8")
        return Cosigned(self.signer.cosign(body, now),
                        TreeHead(checkpoint.size, checkpoint.root_hash), checkpoint)

    @staticmethod
    def _signed_checkpoint(log: WitnessedLog, note: bytes) -> Checkpoint:
        try:
            text = open_note(note, [log.key])
        except NoteError:
            raise UnsignedCheckpoint(f"the checkpoint carries no valid signature of "
                                     f"{log.key.name}+{log.key.key_id.hex()}, the key of "
                                     f"{log.origin!r}", origin=log.origin) from None
        try:
            return Checkpoint.parse(text)
        except NoteError:
            raise MalformedRequest("the signed note is not a checkpoint") from None


def _check_extends(last: TreeHead, checkpoint: Checkpoint, proof: tuple[bytes, ...]) -> None:
    """InconsistentCheckpoint unless ``checkpoint`` is ``last``'s tree or one it is a prefix
    of (sizes already checked: last.size <= checkpoint.size)."""
    if last.size == checkpoint.size and checkpoint.root_hash != last.root_hash:
        raise InconsistentCheckpoint(f"the checkpoint has size {last.size}, as last cosigned, "
                                     "but another root hash", size=last.size)
    if last.size in (0, checkpoint.size):
        if proof:
            raise InconsistentCheckpoint(f"the proof from old size {last.size} to "
                                         f"{checkpoint.size} must be empty",
                                         old_size=last.size, size=checkpoint.size)
        return
    try:
        _verify_proof(last, checkpoint, proof)
    except ProofError as exc:
        raise InconsistentCheckpoint(f"the consistency proof from {last.size} to "
                                     f"{checkpoint.size} does not verify: {exc}",
                                     old_size=last.size, size=checkpoint.size) from None


def _verify_proof(last: TreeHead, checkpoint: Checkpoint, proof: tuple[bytes, ...]) -> None:
    if any(len(h) != HASH_SIZE for h in proof):
        raise ProofError(f"a proof hash is not {HASH_SIZE} bytes")
    verify_consistency(last.size, checkpoint.size, proof, last.root_hash, checkpoint.root_hash)
