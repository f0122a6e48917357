"""The audit log: the Merkle tree of events, its signed checkpoints and their saved copy.

The log takes part in the unit of work every state change runs in (gateway.unit_of_work): it
appends each batch's events as leaves, signs one checkpoint for the batch within the batch's
transaction and saves it outside the database once the batch is committed.

A log must never sign two histories (a checkpoint inconsistent with one it signed before), so
the latest checkpoint is also saved in a file outside the database ([audit] checkpoint_file)
before anyone sees it, and a database whose log does not extend that file is refused at start:
a restored backup would otherwise sign new checkpoints of sizes already signed, with other
roots. A database that is truly lost continues under a new origin (`open_new_origin`).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from gateway.audit.saved import CheckpointFile
from gateway.models import AuditLeaf, Checkpoint
from gateway.storage import Database, StorageError, transaction
from gateway.storage import audit as sql
from gateway.unit_of_work import Committed, UnitOfWork
from govshare import errors, times
from govshare.transparency import merkle, note, record

log = logging.getLogger(__name__)

INDEX_STEP = 256
"""Leaves whose subjects one transaction of the subject index takes in, when that many wait
and the queue is empty: small, so a change that arrives meanwhile waits little (steps of 2,048
cost 64 writers 5% of their appends/s and doubled their p99 commit), but never fewer, so a
quiet gateway does not pay a second commit for every event."""
INDEX_LAG = 65536
"""Leaves the subject index may fall behind under load before a step goes before each batch;
a listing scans at most this many."""
CHECKPOINT_VOUCHED = "audit.checkpoint_vouched"
"""The action recording that a start saved the database's checkpoint because the checkpoint
file was missing and the operator vouched for the database (--checkpoint-from-database): a
restored backup started that way stays visible to auditors."""


class LogIntegrityError(Exception):
    """The stored log does not match its last signed checkpoint."""


class LogRollback(LogIntegrityError):
    """The database's log does not extend the checkpoint saved outside it: the database is
    older than what the log published (a restored backup) or a copy that went its own way."""


class CheckpointKeyMismatch(Exception):
    """The last stored checkpoint is signed by neither the log's key nor a previous key the
    configuration lists, or names another origin: the signing key or [audit] origin changed."""


class AuditLog:
    """The Merkle-tree audit log over a Database, appended within a UnitOfWork."""

    def __init__(
        self,
        db: Database,
        signer: note.NoteSigner,
        origin: str,
        *,
        checkpoint_file: Path,
        previous: Sequence[note.NoteVerifier] = (),
        clock: Callable[[], datetime] = times.utcnow,
    ):
        self.db = db
        self.signer = signer
        self.origin = origin
        self.saved = CheckpointFile(checkpoint_file)
        """Where the latest signed checkpoint is saved outside the database."""
        self.previous = tuple(previous)
        """Keys that signed this log before `signer` ([audit] previous_verifier_keys)."""
        self.clock = clock
        self._frontier = merkle.Frontier()
        self._batch_start = 0
        """The tree size before the batch being committed."""
        self._leaves: list[AuditLeaf] = []
        self._nodes: list[tuple[int, int, bytes]] = []
        self._signed: Checkpoint | None = None
        """The batch's checkpoint, to save once the batch is committed."""
        self._indexed: int | None = 0
        """The first leaf the subject index does not cover (None: indexing failed, so
        listings scan beyond the last good step until a restart)."""
        self._published: Checkpoint | None = None
        """The latest checkpoint saved in checkpoint_file: the only one shown to anyone."""
        self._unsaved: Checkpoint | None = None
        """The checkpoint committed whose save failed: no batch commits until it is."""
        self._signed_now = False
        """Whether `check` found the latest checkpoint signed by the current key and origin."""
        self._vouched = False
        """Whether `check` accepted the database on the operator's word, the file missing."""

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self, work: UnitOfWork, *, checkpoint_from_database: bool = False) -> None:
        """`check`, then `start`."""
        self.check(checkpoint_from_database=checkpoint_from_database)
        self.start(work)

    def check(self, *, checkpoint_from_database: bool = False) -> None:
        """Check the stored log against its last signed checkpoint and against the checkpoint
        saved outside the database, writing nothing (a refused start changes nothing).

        Raises LogIntegrityError when the recomputed root differs (a gateway must not serve on
        top of a log that was altered), LogRollback when the log does not extend the saved
        checkpoint, or when that file is missing for a log with leaves unless
        `checkpoint_from_database` (the operator vouches that the database is the newest).
        """
        conn = self._load()
        self._signed_now = self._check_against_checkpoint(conn, self._frontier.size)
        self._check_against_saved(conn, checkpoint_from_database)

    def start(self, work: UnitOfWork, actor: str = "") -> None:
        """Start `work` committing on the log `check` accepted: sign its latest checkpoint
        again if a previous key or origin signed it (or none exists), and save it outside the
        database; if the operator vouched for the database, log and audit it as `actor` (the
        gateway's identity; the origin when not given)."""
        conn = self.db.writer
        latest = sql.latest_checkpoint(conn)
        if not self._signed_now:  # no checkpoint yet, or one of a previous key or origin
            latest = self._write_checkpoint(conn, self.clock())
        self._reset_saved(bytes(latest.note))
        self._published = latest
        work.start()
        if self._vouched:
            self._record_vouched(work, latest, actor or self.origin)

    def _record_vouched(self, work: UnitOfWork, latest: Checkpoint, actor: str) -> None:
        """Log and audit that the database's checkpoint was taken on the operator's word."""
        reason = (f"{self.saved.path} was missing; the operator vouched that the database is"
                  f" the newest (--checkpoint-from-database), so its checkpoint of size"
                  f" {latest.tree_size}, root {_b64(latest.root_hash)}, was saved there")
        log.warning("audit checkpoint vouched for: %s", reason)
        work.append([record.Event(actor, CHECKPOINT_VOUCHED, reason=reason)])

    def open_new_origin(self, work: UnitOfWork, actor: str) -> Committed:
        """Continue a log whose database was lost or rolled back under a new origin (the
        configured one): its first leaf records the checkpoint the previous origin ended with
        (the saved one), and no checkpoint of the previous origin is signed again. The leaves
        the database holds stay where they are, so the records naming them keep their
        meaning. LogIntegrityError when there is nothing to continue."""
        conn = self._load()
        self._check_against_checkpoint(conn, self._frontier.size)
        found = self._saved_checkpoint()
        if found is None:
            raise LogIntegrityError(f"no checkpoint is saved in {self.saved.path}: there is no"
                                    " previous log to continue")
        signed, ended = found
        if ended.origin == self.origin:
            raise LogIntegrityError(
                f"the saved checkpoint is of origin {self.origin}, which [audit] origin still"
                " names: set [audit] origin to a name this log never had, and add the line"
                " audit.vkey holds to [audit] previous_verifier_keys")
        had = self._origins_had(conn)
        if self.origin in had:
            raise LogIntegrityError(
                f"the log already had origin {self.origin} (named in {had[self.origin]}):"
                " checkpoints signed under it could be signed again with other roots; set"
                " [audit] origin to a new name, one this log never had")
        if self._extends(conn, ended):
            raise LogIntegrityError(
                f"the database's log extends the checkpoint saved in {self.saved.path}:"
                " nothing was lost, so serve it as it is (with its previous [audit] origin)")
        self._reset_saved(signed)
        work.start()
        when = times.to_text(self.clock())
        return work.append([record.Event(actor, record.NEW_ORIGIN, reason=signed.decode(),
                                         time=when)])

    def _origins_had(self, conn: sqlite3.Connection) -> dict[str, str]:
        """Every origin the log is known to have had, and where it shows: the stored
        checkpoints, the checkpoints the new-origin links record, the previous keys, the
        checkpoint file."""
        had = dict.fromkeys(sql.checkpoint_origins(conn), "the database's checkpoints")
        for _, data in sql.records_of_action(conn, record.NEW_ORIGIN):
            linked = record.decode(data)["reason"].split("\n", 1)[0]
            had.setdefault(linked, "the database's new-origin records")
        for verifier in self.previous:
            had.setdefault(verifier.name, "[audit] previous_verifier_keys")
        for signed in self.saved.read():
            origin = signed.split(b"\n", 1)[0].decode(errors="replace")
            had.setdefault(origin, str(self.saved.path))
        return had

    def _load(self) -> sqlite3.Connection:
        """The write connection, with the frontier and the subject index read from it."""
        conn = self.db.writer
        size = sql.tree_size(conn)
        self._frontier = merkle.Frontier.for_size(size, lambda c: sql.fetch_nodes(conn, c))
        self._indexed = sql.subjects_indexed_upto(conn)
        return conn

    def close(self) -> None:
        """Close the checkpoint file, once the unit of work is closed."""
        self.saved.close()

    def _check_against_checkpoint(self, conn: sqlite3.Connection, size: int) -> bool:
        """Whether the latest checkpoint is signed by the current key for the current origin
        (if not, open() signs it again); LogIntegrityError unless it holds for the log."""
        latest = sql.latest_checkpoint(conn)
        if latest is None:
            if size:
                raise LogIntegrityError(f"{size} audit leaves but no signed checkpoint")
            return False
        checkpoint, signers = self._open_latest(bytes(latest.note))
        if checkpoint.size != size:
            raise LogIntegrityError(
                f"log holds {size} leaves but the last signed checkpoint is for {checkpoint.size}"
            )
        leaf_hashes = (merkle.leaf_hash(data) for _, data in sql.iter_records(conn))
        root = merkle.root_from_leaf_hashes(list(leaf_hashes))
        if root != checkpoint.root_hash or root != self._frontier.root():
            raise LogIntegrityError("the recomputed root differs from the last signed checkpoint")
        current = self.signer.verifier()
        return checkpoint.origin == self.origin and \
            f"{current.name}+{current.key_id.hex()}" in signers

    def _check_against_saved(self, conn: sqlite3.Connection, from_database: bool) -> None:
        """LogRollback unless the log extends the checkpoint saved outside the database."""
        size = self._frontier.size
        found = self._saved_checkpoint()
        if found is None:
            if size and not from_database:
                raise LogRollback(
                    f"the database {self.db.path} holds an audit log of {size} leaves, but its"
                    f" saved checkpoint {self.saved.path} is missing, so nothing shows the"
                    " database is the newest: put the file back; on the first start after"
                    " upgrading govshare, or if you know this database is the newest, start"
                    " once with --checkpoint-from-database")
            self._vouched = bool(size)
            return
        _, saved = found
        if not self._extends(conn, saved):
            raise LogRollback(
                f"the database {self.db.path} holds an audit log of {size} leaves with root"
                f" {_b64(self._frontier.root())}, which does not extend the checkpoint this"
                f" log signed and saved in {self.saved.path} (size {saved.size}, root"
                f" {_b64(saved.root_hash)}): the database is older than the log already"
                " published (a restored backup?) or a copy that went its own way; put back the"
                " newest database or, if it is lost, continue the log under a new origin"
                " (govshare gateway new-origin, see docs/RELIABILITY.md)")

    def _saved_checkpoint(self) -> tuple[bytes, note.Checkpoint] | None:
        """The latest checkpoint saved outside the database that a key of this log (current
        or previous) verifies, signed and parsed (a slot torn by a crash does not verify);
        None when there is no file. LogIntegrityError when no checkpoint in it verifies."""
        try:
            slots = self.saved.read()
        except FileNotFoundError:
            return None
        verifiers = [self.signer.verifier(), *self.previous]
        problem = "it holds none"
        for signed in slots:
            try:
                return signed, note.Checkpoint.parse(note.open_note(signed, verifiers))
            except note.NoteError as exc:
                problem = str(exc)
        raise LogIntegrityError(
            f"no checkpoint saved in {self.saved.path} verifies with this log's keys"
            f" ({problem}): put back the file the gateway saved there, or add the key that"
            " signed it to [audit] previous_verifier_keys")

    def _reset_saved(self, signed: bytes) -> None:
        try:
            self.saved.reset(signed)
        except OSError as exc:
            raise StorageError(f"[audit] checkpoint_file: cannot write {self.saved.path}:"
                               f" {exc.strerror}") from None

    def _extends(self, conn: sqlite3.Connection, saved: note.Checkpoint) -> bool:
        """Whether the stored tree has `saved` as a prefix (RFC 6962 consistency)."""
        size = self._frontier.size
        if saved.size > size:
            return False
        if saved.size == 0:
            return True
        proof = merkle.consistency_proof(saved.size, size, lambda c: sql.fetch_nodes(conn, c))
        try:
            merkle.verify_consistency(saved.size, size, proof, saved.root_hash,
                                      self._frontier.root())
        except merkle.ProofError:
            return False
        return True

    def _open_latest(self, signed: bytes) -> tuple[note.Checkpoint, list[str]]:
        """The latest stored checkpoint and the keys it names, once a known key's signature
        verifies; CheckpointKeyMismatch, saying what differs, when none is known."""
        try:
            keys = note.signing_keys(signed)
            checkpoint = note.Checkpoint.parse(
                note.open_note(signed, [self.signer.verifier(), *self.previous]))
        except note.UnknownKeyError:
            current = self.signer.verifier()
            raise CheckpointKeyMismatch(
                f"the audit log's last checkpoint is signed by {' and '.join(keys)}, but this"
                f" gateway signs as {current.name}+{current.key_id.hex()} (origin+key hash: the"
                " origin is [audit] origin, the hash covers it and the [tls] signing key):"
                " restore the previous signing key and origin, or add the verifier key the log"
                " had (the line audit.vkey held before) to [audit] previous_verifier_keys"
                ) from None
        except note.NoteError as exc:
            raise LogIntegrityError(f"the last signed checkpoint: {exc}") from None
        return checkpoint, keys

    # -- within the unit of work ------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._frontier.size

    def begin_batch(self) -> None:
        self._batch_start = self._frontier.size
        self._save_unsaved()

    def add(self, events: list[record.Event]) -> list[int]:
        indices = []
        for event in events:
            index = self._frontier.size
            self._nodes.extend(self._frontier.append(event.leaf_hash))
            self._leaves.append(AuditLeaf(index, event.record, event.time, event.actor,
                                          event.action, event.outcome,
                                          sql.frame(event.subjects)))
            indices.append(index)
        return indices

    def write(self, conn: sqlite3.Connection, now: datetime) -> None:
        """Store the batch's leaves and nodes and, if the tree grew, its signed checkpoint."""
        sql.insert_leaves(conn, self._leaves)
        sql.insert_nodes(conn, self._nodes)
        self._leaves, self._nodes = [], []
        if self._frontier.size != self._batch_start:
            self._signed = self._write_checkpoint(conn, now)

    def committed(self) -> None:
        if self._signed is not None:
            signed, self._signed = self._signed, None
            self._publish_committed(signed)

    def rolled_back(self, conn: sqlite3.Connection) -> None:
        self._leaves, self._nodes, self._signed = [], [], None
        self._frontier = merkle.Frontier.for_size(self._batch_start,
                                                  lambda c: sql.fetch_nodes(conn, c))

    def between_batches(self, idle: bool) -> bool:
        """One step of the subject index, when due."""
        if not self._index_due(idle):
            return False
        self._index_subjects()
        return True

    def _index_due(self, idle: bool) -> bool:
        if self._indexed is None:
            return False
        behind = self._frontier.size - self._indexed
        return behind >= INDEX_LAG or (behind >= INDEX_STEP and idle)

    def _index_subjects(self) -> None:
        """One step of the subject index, in a transaction of its own. It is derived data:
        a failure stops the indexing (listings then scan past the last step) but no commit."""
        assert self._indexed is not None
        conn = self.db.writer
        try:
            transaction.begin(conn)
            upto = sql.index_subjects(conn, self._indexed, INDEX_STEP)
            transaction.commit(conn)
        except transaction.Error as exc:
            log.error("audit subject index stopped at leaf %d: %s", self._indexed, exc)
            self._indexed = None
            with contextlib.suppress(transaction.Error):  # the next batch begins afresh anyway
                transaction.rollback(conn)
            return
        self._indexed = upto

    def _write_checkpoint(self, conn: sqlite3.Connection, now: datetime) -> Checkpoint:
        """Sign and store a checkpoint of the tree as it stands."""
        size, root = self._frontier.size, self._frontier.root()
        text = note.Checkpoint(self.origin, size, root).to_text()
        checkpoint = Checkpoint(tree_size=size, root_hash=root,
                                note=note.sign_note(text, [self.signer]),
                                create_time=times.to_text(now))
        sql.insert_checkpoint(conn, checkpoint)
        return checkpoint

    def _publish_committed(self, signed: Checkpoint) -> None:
        """Save a batch's checkpoint outside the database, and only then show it. Saved after
        the commit, so a crash between the two leaves the file behind the database (which
        start-up accepts and catches up), never ahead of it.

        A checkpoint that cannot be saved stays unshown. The batch's changes are durable in
        the database all the same (they were committed; their callers are told so), but no
        later batch commits until the checkpoint is saved (`_save_unsaved`): those fail
        UNAVAILABLE and roll back. Otherwise the database would run ever further ahead of the
        file, and a restored backup that extends the file could take the place of all those
        acknowledged changes; so at most one batch is ever committed beyond the file."""
        try:
            self.saved.save(bytes(signed.note))
        except (OSError, ValueError) as exc:
            log.error("audit checkpoint of size %d not saved in %s, so not shown: %s; no change"
                      " commits until it is", signed.tree_size, self.saved.path, exc)
            self._unsaved = signed
            return
        self._published = signed

    def _save_unsaved(self) -> None:
        """Save the checkpoint whose save failed, before the next batch; OSError if it still
        cannot be (the batch then fails, writing nothing)."""
        if self._unsaved is None:
            return
        try:
            self.saved.save(bytes(self._unsaved.note))
        except ValueError as exc:
            raise OSError(str(exc)) from exc
        log.info("audit checkpoint of size %d saved in %s at last: changes commit again",
                 self._unsaved.tree_size, self.saved.path)
        self._published, self._unsaved = self._unsaved, None

    # -- reading -----------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """The latest published checkpoint: the latest saved outside the database (a later one
        committed but not saved yet is not)."""
        latest = self._published
        if latest is None:
            raise errors.Unavailable("the audit log has no checkpoint yet")
        return latest

    def inclusion_proof(self, leaf_index: int, size: int) -> list[bytes]:
        conn = self.db.reader()
        return merkle.inclusion_proof(leaf_index, size, lambda c: sql.fetch_nodes(conn, c))

    def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]:
        conn = self.db.reader()
        return merkle.consistency_proof(
            first_size, second_size, lambda c: sql.fetch_nodes(conn, c)
        )


def origin_links(conn: sqlite3.Connection,
                 verifiers: Sequence[note.NoteVerifier]) -> list[tuple[int, str]]:
    """Where the log changed origin after a lost database: (leaf index, what it continues,
    in words), the previous origin's last checkpoint verified with `verifiers`."""
    links = []
    for index, data in sql.records_of_action(conn, record.NEW_ORIGIN):
        signed = record.decode(data)["reason"].encode()
        try:
            ended = note.Checkpoint.parse(note.open_note(signed, verifiers))
        except note.NoteError as exc:
            links.append((index, f"a checkpoint that does not verify ({exc})"))
            continue
        links.append((index, f"{ended.origin} after its checkpoint of size {ended.size}, root"
                             f" {_b64(ended.root_hash)}"))
    return links


def _b64(digest: bytes) -> str:
    """A root hash as checkpoints write it."""
    return base64.b64encode(digest).decode()
