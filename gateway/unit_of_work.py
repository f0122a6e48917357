"""The unit of work every state change of the gateway runs in, with group commit.

A state change is a `change` function given to `UnitOfWork.commit`. One committer thread takes
whatever changes are waiting, runs each inside one transaction (each in a savepoint of its own
when one fails after writing), hands their events to the audit log, which appends them and
signs one checkpoint for the batch before the commit and saves it after, and wakes the callers
in order. A caller returns only after its change and its events are durable; a change that
fails leaves nothing but its refusal event. Between batches the audit log takes small steps of
its own (its subject index).
"""

from __future__ import annotations

import itertools
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gateway.storage import Database, StorageError, transaction
from govshare import errors, times
from govshare.transparency import record

log = logging.getLogger(__name__)

MAX_BATCH = 512
GATHER_YIELDS = 4
"""At most this many yields between batches while the queue keeps growing."""


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


class Log(Protocol):
    """What the unit of work asks of the audit log, batch by batch: the hooks a batch's
    events are appended, signed and saved in."""

    @property
    def size(self) -> int:
        """The leaves appended so far, this batch's included: the next event's index."""

    def begin_batch(self) -> None:
        """Before a batch: OSError when the batch must not commit."""

    def add(self, events: list[record.Event]) -> list[int]:
        """Append a change's events to the batch; their leaf indices."""

    def write(self, conn: sqlite3.Connection, now: datetime) -> None:
        """Store the batch's leaves (and a checkpoint) in the open transaction."""

    def committed(self) -> None:
        """After the batch's commit."""

    def rolled_back(self, conn: sqlite3.Connection) -> None:
        """After the batch's rollback: forget its leaves."""

    def between_batches(self, idle: bool) -> bool:
        """A step of its own between batches (`idle`: no change waits); whether one ran."""


class _WroteBeforeFailing(Exception):
    """A change raised after writing: its batch must be redone with savepoints."""


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


class UnitOfWork:
    """The committer: one thread running the waiting changes of a Database in batches."""

    def __init__(self, db: Database, log: Log, *,
                 clock: Callable[[], datetime] = times.utcnow):
        self.db = db
        self.log = log
        self.clock = clock
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._open_lock = threading.Lock()
        """Orders commits against close(): none may be queued behind the stop sentinel, where
        it would wait forever (and keep the process from exiting)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="committer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Finish the queued changes and stop the committer."""
        with self._open_lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._queue.put(None)
        thread.join()

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
                raise errors.Unavailable("the unit of work is not started, or closed")
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
            if self.log.between_batches(self._queue.empty()):
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

    def _commit_batch(self, batch: list[_Pending]) -> None:
        conn = self.db.writer
        try:
            self.log.begin_batch()
            try:
                outcomes = self._run_batch(conn, batch, isolated=False)
            except _WroteBeforeFailing:
                # A change failed after writing: run the batch again, each change in a
                # savepoint, so only that change's writes are undone.
                self._rollback(conn)
                outcomes = self._run_batch(conn, batch, isolated=True)
        except Exception as exc:  # storage failure: nothing of the batch is kept
            request_id = uuid.uuid4().hex  # the detail is for the operator's log only
            log.error("audit batch of %d failed to commit (request id %s): %s", len(batch),
                      request_id, exc)
            failure = errors.Unavailable(
                f"storage is not writable; retry later, or quote request id {request_id} to the"
                " operator", reason="STORAGE_ERROR", request_id=request_id)
            try:
                self._rollback(conn)
            finally:
                for pending in batch:
                    pending.error = failure
                _wake_in_turn(batch)
            return
        self.log.committed()
        size = self.log.size
        for pending, value, failure, indices in outcomes:
            pending.outcome = Committed(value, indices, size)
            pending.error = failure
        _wake_in_turn(batch)

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Pending], *, isolated: bool
    ) -> list[tuple[_Pending, Any, BaseException | None, list[int]]]:
        """Apply every change and hand its events to the log in one transaction, then commit;
        returns the outcomes.

        Changes check before they write, so a failing change has usually written nothing and
        needs no savepoint (two statements saved per change on the hot path); `isolated` runs
        each in a savepoint for the rare batch where that did not hold.
        """
        now = self.clock()
        outcomes = []
        transaction.begin(conn)
        for pending in batch:
            value, failure, events = self._apply(conn, pending, now, isolated)
            outcomes.append((pending, value, failure, self.log.add(events)))
        self.log.write(conn, now)
        transaction.commit(conn)
        return outcomes

    def _apply(
        self, conn: sqlite3.Connection, pending: _Pending, now: datetime, isolated: bool
    ) -> tuple[Any, BaseException | None, list[record.Event]]:
        """Run one change; on failure keep only its refusal event."""
        if isolated:
            transaction.savepoint(conn)
        written = transaction.rows_written(conn)
        try:
            value, events = pending.change(Tx(conn, now, self.log.size))
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

    def _rollback(self, conn: sqlite3.Connection) -> None:
        try:
            transaction.rollback(conn)
            self.log.rolled_back(conn)
        except transaction.Error as exc:
            raise StorageError(f"cannot roll back the audit log: {exc}") from exc
