"""The audit log and the gateway's single write path, with group commit.

Every state change of the gateway runs as a `change` function inside `AuditLog.commit`. One
committer thread takes whatever changes are waiting, runs each in its own savepoint inside one
transaction, appends their events as leaves of the Merkle tree, signs one checkpoint for the
batch and commits. A caller returns only after its change and its events are durable; a change
that fails leaves nothing but its refusal event.

A log must never sign two histories (a checkpoint inconsistent with one it signed before), so
the latest checkpoint is also saved in a file outside the database ([audit] checkpoint_file)
before anyone sees it, and a database whose log does not extend that file is refused at start:
a restored backup would otherwise sign new checkpoints of sizes already signed, with other
roots. A database that is truly lost continues under a new origin (`open_new_origin`).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.audit.saved import CheckpointFile
from gateway.storage import Database, StorageError, transaction
from gateway.storage import audit as sql
from govshare import errors, times
from govshare.transparency import merkle, note, record

log = logging.getLogger(__name__)

MAX_BATCH = 512
GATHER_YIELDS = 4
"""At most this many yields between batches while the queue keeps growing."""
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


class _WroteBeforeFailing(Exception):
    """A change raised after writing: its batch must be redone with savepoints."""


class LogIntegrityError(Exception):
    """The stored log does not match its last signed checkpoint."""


class LogRollback(LogIntegrityError):
    """The database's log does not extend the checkpoint saved outside it: the database is
    older than what the log published (a restored backup) or a copy that went its own way."""


class CheckpointKeyMismatch(Exception):
    """The last stored checkpoint is signed by neither the log's key nor a previous key the
    configuration lists, or names another origin: the signing key or [audit] origin changed."""


@dataclass
class Tx:
    """What a change function gets: the write connection, the time, and its leaf positions."""

    conn: sqlite3.Connection
    now: datetime
    next_leaf_index: int
    """The index the change's first event will get (so a receipt can name it)."""


Change = Callable[[Tx], tuple[Any, list[record.Event]]]
"""A state change: writes through `tx.conn`, returns (value, events to append)."""


@dataclass
class Committed:
    """The outcome of a commit: the change's value and where its events landed."""

    value: Any
    leaf_indices: list[int]
    tree_size: int


class _Pending:
    """A change waiting for its batch. Its lock is held until the outcome is set: releasing a
    lock is the cheapest hand-off CPython has (a Future's condition costs several times more).

    The callers of a batch wake one after another: the committer releases the first, and each
    caller releases the next (`then`) once it runs. Released all at once, a batch's callers all
    ran for the interpreter lock together: at 64 writers, 0.95 involuntary context switches per
    append and 18,700-19,300 appends/s; woken in turn, 0.28 and 23,000. Every caller waits
    (`commit` does) on a thread no signal interrupts (a request thread, or start-up before
    serving), so the chain holds."""

    __slots__ = ("change", "done", "error", "outcome", "refusal", "then")

    def __init__(self, change: Change,
                 refusal: Callable[[errors.GatewayError], record.Event] | None):
        self.change = change
        self.refusal = refusal
        self.outcome: Committed | None = None
        self.error: BaseException | None = None
        self.then: _Pending | None = None
        self.done = threading.Lock()
        self.done.acquire()

    def wait(self) -> Committed:
        self.done.acquire()
        if self.then is not None:
            self.then.done.release()
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


def _wake_in_turn(batch: list[_Pending]) -> None:
    """Chain the batch's callers (each wakes the next, see _Pending) and wake the first."""
    for pending, after in itertools.pairwise(batch):
        pending.then = after
    batch[0].done.release()


class AuditLog:
    """The Merkle-tree audit log over a Database, and the committer that writes through it."""

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
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._open_lock = threading.Lock()
        """Orders commits against close(): none may be queued behind the stop sentinel, where
        it would wait forever (and keep the process from exiting)."""
        self._frontier = merkle.Frontier()
        self._indexed: int | None = 0
        """The first leaf the subject index does not cover (None: indexing failed, so
        listings scan beyond the last good step until a restart)."""
        self._published: dict[str, Any] | None = None
        """The latest checkpoint row saved in checkpoint_file: the only one shown to anyone."""
        self._unsaved: dict[str, Any] | None = None
        """The checkpoint row committed whose save failed: no batch commits until it is."""
        self._signed_now = False
        """Whether `check` found the latest checkpoint signed by the current key and origin."""
        self._vouched = False
        """Whether `check` accepted the database on the operator's word, the file missing."""

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self, *, checkpoint_from_database: bool = False) -> None:
        """`check`, then `start`."""
        self.check(checkpoint_from_database=checkpoint_from_database)
        self.start()

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

    def start(self, actor: str = "") -> None:
        """Start committing on the log `check` accepted: sign its latest checkpoint again if
        a previous key or origin signed it (or none exists), and save it outside the
        database; if the operator vouched for the database, log and audit it as `actor` (the
        gateway's identity; the origin when not given)."""
        conn = self.db.writer
        latest = sql.latest_checkpoint(conn)
        if not self._signed_now:  # no checkpoint yet, or one of a previous key or origin
            latest = self._write_checkpoint(conn, self.clock())
        self._reset_saved(bytes(latest["note"]))
        self._published = latest
        self._start()
        if self._vouched:
            self._record_vouched(latest, actor or self.origin)

    def _record_vouched(self, latest: dict[str, Any], actor: str) -> None:
        """Log and audit that the database's checkpoint was taken on the operator's word."""
        reason = (f"{self.saved.path} was missing; the operator vouched that the database is"
                  f" the newest (--checkpoint-from-database), so its checkpoint of size"
                  f" {latest['tree_size']}, root {_b64(latest['root_hash'])}, was saved there")
        log.warning("audit checkpoint vouched for: %s", reason)
        self.append([record.Event(actor, CHECKPOINT_VOUCHED, reason=reason)])

    def open_new_origin(self, actor: str) -> Committed:
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
        self._start()
        when = times.to_text(self.clock())
        return self.append([record.Event(actor, record.NEW_ORIGIN, reason=signed.decode(),
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

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-committer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Finish the queued changes and stop the committer."""
        with self._open_lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._queue.put(None)
        thread.join()
        self.saved.close()

    def _check_against_checkpoint(self, conn: sqlite3.Connection, size: int) -> bool:
        """Whether the latest checkpoint is signed by the current key for the current origin
        (if not, open() signs it again); LogIntegrityError unless it holds for the log."""
        latest = sql.latest_checkpoint(conn)
        if latest is None:
            if size:
                raise LogIntegrityError(f"{size} audit leaves but no signed checkpoint")
            return False
        checkpoint, signers = self._open_latest(bytes(latest["note"]))
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

    # -- writing -----------------------------------------------------------------------------

    def commit(
        self,
        change: Change,
        refusal: Callable[[errors.GatewayError], record.Event] | None = None,
    ) -> Committed:
        """Run `change` in the next batch and wait until it is durable.

        If the change raises a GatewayError, its writes are rolled back, `refusal(error)` (when
        given) is appended instead, and the error is raised here once that refusal is durable.
        """
        pending = _Pending(change, refusal)
        with self._open_lock:
            if self._thread is None:
                raise errors.Unavailable("the audit log is not open")
            self._queue.put(pending)
        return pending.wait()

    def append(self, events: list[record.Event]) -> Committed:
        """Append events that record no state change (refusals, reads worth recording)."""
        return self.commit(lambda tx: (None, events))

    def _run(self) -> None:
        previous = 0
        while True:
            if previous > 1:
                self._gather()
            if self._index_due():
                self._index_subjects()
                continue
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit_batch(batch)
            previous = len(batch)
            if stop:
                return

    def _gather(self) -> None:
        """Let the callers a batch just released queue their next changes before the next batch
        is taken. Without this yield the committer takes the queue while most of them still wait
        for the interpreter lock, and batches settle at about half the callers (64 writers: 31
        per batch, 46-62 with it, 5-8% more appends/s and fewer context switches)."""
        waiting = self._queue.qsize()
        for _ in range(GATHER_YIELDS):
            time.sleep(0)  # releases the interpreter lock to the callers that are runnable
            now = self._queue.qsize()
            if now == waiting:
                return
            waiting = now

    def _index_due(self) -> bool:
        if self._indexed is None:
            return False
        behind = self._frontier.size - self._indexed
        return behind >= INDEX_LAG or (behind >= INDEX_STEP and self._queue.empty())

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

    def _commit_batch(self, batch: list[_Pending]) -> None:
        conn = self.db.writer
        size_before = self._frontier.size
        try:
            self._save_unsaved()
            try:
                outcomes, signed = self._run_batch(conn, batch, isolated=False)
            except _WroteBeforeFailing:
                # A change failed after writing: run the batch again, each change in a
                # savepoint, so only that change's writes are undone.
                self._rollback(conn, size_before)
                outcomes, signed = self._run_batch(conn, batch, isolated=True)
        except Exception as exc:  # storage failure: nothing of the batch is kept
            request_id = uuid.uuid4().hex  # the detail is for the operator's log only
            log.error("audit batch of %d failed to commit (request id %s): %s", len(batch),
                      request_id, exc)
            failure = errors.Unavailable(
                f"storage is not writable; retry later, or quote request id {request_id} to the"
                " operator", reason="STORAGE_ERROR", request_id=request_id)
            try:
                self._rollback(conn, size_before)
            finally:
                for pending in batch:
                    pending.error = failure
                _wake_in_turn(batch)
            return
        if signed is not None:
            self._publish_committed(signed)
        size = self._frontier.size
        for pending, value, failure, indices in outcomes:
            pending.outcome = Committed(value, indices, size)
            pending.error = failure
        _wake_in_turn(batch)

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Pending], *, isolated: bool
    ) -> tuple[list[tuple[_Pending, Any, BaseException | None, list[int]]],
               dict[str, Any] | None]:
        """Apply every change and append its events in one transaction, then commit; returns
        the outcomes and the checkpoint signed, if the tree grew.

        Changes check before they write, so a failing change has usually written nothing and
        needs no savepoint (two statements saved per change on the hot path); `isolated` runs
        each in a savepoint for the rare batch where that did not hold.
        """
        now = self.clock()
        size_before = self._frontier.size
        outcomes = []
        leaves: list[tuple[Any, ...]] = []
        nodes: list[tuple[int, int, bytes]] = []
        transaction.begin(conn)
        for pending in batch:
            value, failure, events = self._apply(conn, pending, now, isolated)
            indices = []
            for event in events:
                index = self._frontier.size
                nodes.extend(self._frontier.append(event.leaf_hash))
                leaves.append((index, event.record, event.time, event.actor, event.action,
                               event.outcome, sql.frame(event.subjects)))
                indices.append(index)
            outcomes.append((pending, value, failure, indices))
        sql.insert_leaves(conn, leaves)
        sql.insert_nodes(conn, nodes)
        signed = None
        if self._frontier.size != size_before:
            signed = self._write_checkpoint(conn, now)
        transaction.commit(conn)
        return outcomes, signed

    def _apply(
        self, conn: sqlite3.Connection, pending: _Pending, now: datetime, isolated: bool
    ) -> tuple[Any, BaseException | None, list[record.Event]]:
        """Run one change; on failure keep only its refusal event."""
        if isolated:
            transaction.savepoint(conn)
        written = transaction.rows_written(conn)
        try:
            value, events = pending.change(Tx(conn, now, self._frontier.size))
        except Exception as exc:
            if isinstance(exc, transaction.OperationalError) or not transaction.is_open(conn):
                raise  # the database itself failed (full, I/O error): the whole batch fails
            if isolated:
                transaction.undo_to_savepoint(conn)
            elif transaction.rows_written(conn) != written:
                raise _WroteBeforeFailing from exc
            refusal = []
            if isinstance(exc, errors.GatewayError) and pending.refusal is not None:
                refusal = [pending.refusal(exc)]
                exc.audited = True
            return None, exc, refusal
        if isolated:
            transaction.release(conn)
        return value, None, events

    def _rollback(self, conn: sqlite3.Connection, size: int) -> None:
        try:
            transaction.rollback(conn)
            self._frontier = merkle.Frontier.for_size(size, lambda c: sql.fetch_nodes(conn, c))
        except transaction.Error as exc:
            raise StorageError(f"cannot roll back the audit log: {exc}") from exc

    def _write_checkpoint(self, conn: sqlite3.Connection, now: datetime) -> dict[str, Any]:
        """Sign and store a checkpoint of the tree as it stands; returns its row."""
        size, root = self._frontier.size, self._frontier.root()
        text = note.Checkpoint(self.origin, size, root).to_text()
        signed = note.sign_note(text, [self.signer])
        when = times.to_text(now)
        sql.insert_checkpoint(conn, size, root, signed, when)
        return {"tree_size": size, "root_hash": root, "note": signed, "create_time": when}

    def _publish_committed(self, signed: dict[str, Any]) -> None:
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
            self.saved.save(bytes(signed["note"]))
        except (OSError, ValueError) as exc:
            log.error("audit checkpoint of size %d not saved in %s, so not shown: %s; no change"
                      " commits until it is", signed["tree_size"], self.saved.path, exc)
            self._unsaved = signed
            return
        self._published = signed

    def _save_unsaved(self) -> None:
        """Save the checkpoint whose save failed, before the next batch; OSError if it still
        cannot be (the batch then fails, writing nothing)."""
        if self._unsaved is None:
            return
        try:
            self.saved.save(bytes(self._unsaved["note"]))
        except ValueError as exc:
            raise OSError(str(exc)) from exc
        log.info("audit checkpoint of size %d saved in %s at last: changes commit again",
                 self._unsaved["tree_size"], self.saved.path)
        self._published, self._unsaved = self._unsaved, None

    # -- reading -----------------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """The latest published checkpoint row (tree_size, root_hash, note, create_time): the
        latest saved outside the database (a later one committed but not saved yet is not)."""
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
