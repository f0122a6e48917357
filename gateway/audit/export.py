"""Exports of the audit log for outside auditors, and offline proofs in the c2sp.org/tlog-proof
format.

Every exported event carries its leaf index and its exact record bytes (base64), so an auditor
can rebuild the tree with their own tools. A proof file is self-contained:

    c2sp.org/tlog-proof@v1
    extra <base64 of the exact record bytes>
    index <leaf index>
    <base64 hash of the audit path, one per line>

    <the signed checkpoint>

The `extra` line is the spec's application-specific data; ours is the record, so the checker
hashes it into the leaf and needs nothing but the file and the log's verifier key.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.storage import audit as sql
from gateway.text import json_text
from govshare.transparency import merkle, note, record

T = TypeVar("T")

HEADER = "c2sp.org/tlog-proof@v1"
CSV_FIELDS = ("leaf_index", "create_time", "actor", "action", "outcome", "reason", "resources",
              "subjects", "leaf_hash", "record", "tree_size", "inclusion_proof")


MAX_PROOF_HASHES = 64
"""Hashes in the audit path of a tree of at most 2**64 leaves."""


class ProofFileError(Exception):
    """A proof file is malformed or does not prove its record against a trusted checkpoint."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def export_rows(
    conn: sqlite3.Connection, filters: dict[str, Any], proof_size: int = 0, batch: int = 1000
) -> Iterator[dict[str, Any]]:
    """Every matching event as a flat dict; with `proof_size`, only those in that tree, each
    with its inclusion proof in it."""
    def fetch(coords: list[merkle.Coord]) -> list[bytes]:
        return sql.fetch_nodes(conn, coords)

    after = -1
    while True:
        found = sql.list_leaves(conn, after=after, limit=batch, **filters)
        for row in found:
            index, data = row.leaf_index, bytes(row.record)
            if proof_size and index >= proof_size:
                return
            fields = record.decode(data)
            item = {
                "leaf_index": index,
                "create_time": fields["time"],
                "actor": fields["actor"],
                "action": fields["action"],
                "outcome": fields["outcome"],
                "reason": fields["reason"],
                "resources": fields["resources"],
                "subjects": fields["subjects"],
                "leaf_hash": _b64(merkle.leaf_hash(data)),
                "record": _b64(data),
            }
            if proof_size:
                item["tree_size"] = proof_size
                item["inclusion_proof"] = [_b64(h) for h in
                                           merkle.inclusion_proof(index, proof_size, fetch)]
            yield item
        if len(found) < batch:
            return
        after = found[-1].leaf_index


def csv_row(item: dict[str, Any]) -> dict[str, Any]:
    """A flat CSV row of an exported event (lists joined by spaces)."""
    return {key: " ".join(value) if isinstance(value, list) else value
            for key, value in item.items()}


def json_line(item: dict[str, Any]) -> str:
    """One JSON line, hidden characters of the text in it escaped (gateway.text.json_text)."""
    return json_text(item)


def proof_text(conn: sqlite3.Connection, leaf_index: int, size: int, signed: bytes) -> str:
    """A tlog-proof of leaf `leaf_index` in the tree of `size` leaves that the signed
    checkpoint note `signed` commits to."""
    if not 0 <= leaf_index < size:
        raise ValueError(f"leaf {leaf_index} is not in the checkpoint's tree of {size} leaves")
    row = sql.get_leaf(conn, leaf_index)
    if row is None:
        raise ValueError(f"leaf {leaf_index} has no stored record")
    hashes = merkle.inclusion_proof(leaf_index, size, lambda c: sql.fetch_nodes(conn, c))
    lines = [HEADER, f"extra {_b64(bytes(row.record))}", f"index {leaf_index}",
             *(_b64(h) for h in hashes), ""]
    return "\n".join(lines) + "\n" + bytes(signed).decode()


@dataclass(frozen=True)
class CheckedProof:
    """What a valid proof file proves."""

    leaf_index: int
    record: bytes
    checkpoint: note.Checkpoint


def check_proof(proof: bytes, verifier: note.NoteVerifier) -> CheckedProof:
    """Check a tlog-proof file offline; ProofFileError, saying what is wrong, at the first
    failed step.

    1. the file is UTF-8: the header, an `extra` line (the record, base64), `index N` (ASCII
       decimal without leading zeros, as the spec requires), at most MAX_PROOF_HASHES lines of
       one base64 SHA-256 hash each, then a blank line;
    2. the checkpoint after it carries a valid signature of `verifier` and names its log;
    3. the audit path leads from the record's leaf hash to the checkpoint's root.
    """
    data, index, hashes, signed = _parse_proof(proof)
    checkpoint = _proof_checkpoint(signed, verifier)
    try:
        merkle.verify_inclusion(merkle.leaf_hash(data), index, checkpoint.size, hashes,
                                checkpoint.root_hash)
    except merkle.ProofError as exc:
        raise ProofFileError(f"the inclusion proof fails: {exc}") from None
    return CheckedProof(index, data, checkpoint)


def _parse_proof(proof: bytes) -> tuple[bytes, int, list[bytes], bytes]:
    """Checklist step 1: (record, leaf index, audit path, signed checkpoint)."""
    try:
        text = proof.decode("utf-8")
    except UnicodeDecodeError:
        raise ProofFileError("the file is not UTF-8 text") from None
    head, separator, signed = text.partition("\n\n")
    lines = head.split("\n")
    if lines[0] != HEADER or not separator:
        raise ProofFileError(f"not a {HEADER} proof: the first line must be {HEADER}, and a"
                             " blank line must come before the checkpoint")
    if len(lines) < 3 or not lines[1].startswith("extra ") or not lines[2].startswith("index "):
        raise ProofFileError("the proof must carry the record (line 2: extra <base64>) and the"
                             " leaf index (line 3: index <decimal>)")
    if len(lines) - 3 > MAX_PROOF_HASHES:
        raise ProofFileError(f"the audit path has {len(lines) - 3} hashes; a tree of at most"
                             f" 2**64 leaves needs at most {MAX_PROOF_HASHES}")
    data = _line(lines[1].removeprefix("extra "), 2, "the record", note.decode_base64)
    index = _line(lines[2].removeprefix("index "), 3, "the leaf index", note.parse_decimal)
    hashes = [_line(line, number, "a hash of the audit path", _hash)
              for number, line in enumerate(lines[3:], start=4)]
    return data, index, hashes, signed.encode()


def _line(text: str, number: int, what: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(text)
    except ValueError as exc:
        raise ProofFileError(f"line {number} is not {what}: {exc}") from None


def _hash(text: str) -> bytes:
    digest = note.decode_base64(text)
    if len(digest) != merkle.HASH_SIZE:
        raise ValueError(f"{len(digest)} bytes, not {merkle.HASH_SIZE}")
    return digest


def _proof_checkpoint(signed: bytes, verifier: note.NoteVerifier) -> note.Checkpoint:
    """Checklist step 2."""
    try:
        checkpoint = note.Checkpoint.parse(note.open_note(signed, [verifier]))
    except note.UnknownKeyError:
        raise ProofFileError(f"the checkpoint is not signed by the key given"
                             f" ({verifier.name}+{verifier.key_id.hex()}): it is signed by"
                             f" {_signers(signed)}") from None
    except note.NoteError as exc:
        raise ProofFileError(f"the checkpoint does not verify: {exc}") from None
    if checkpoint.origin != verifier.name:
        raise ProofFileError(f"the checkpoint is for {checkpoint.origin!r}, not {verifier.name!r}")
    return checkpoint


def _signers(signed: bytes) -> str:
    return ", ".join(note.signing_keys(signed)) or "no key"
