"""Offline verification of a stored audit log: the library behind `govshare audit verify`.

Checklist, over the database alone (no gateway needed):

1. every stored checkpoint's note verifies against the log's key (or a previous key of the log,
   after the signing key or origin changed), names that key's origin and agrees with its row;
2. the tree is rebuilt from the stored record bytes, chunk by chunk, and every stored tree node
   is compared with the recomputed one (a node altered, missing or extra is caught where it is);
3. every checkpoint's root must equal the rebuilt root at its size. As all roots come from one
   rebuilt tree, successive checkpoints that match are consistent with each other by
   construction; a mismatch means the records under it were rewritten;
4. the filter columns (subjects among them) and the subject index, as far as it claims to cover
   the log, agree with the record bytes (they decide what an agency sees, though the tree does
   not cover them);
5. with `against`, a checkpoint saved outside the database must be a prefix of the rebuilt tree,
   which catches a truncated or rewritten history even when every stored checkpoint was replaced.
   A signed root alone cannot say which leaf differs (nor whether a shorter log was truncated
   or forked); given a copy of the earlier database instead, the first leaf where the two
   histories part is found by binary search over the roots of their prefixes (O(log n) roots,
   each from O(log n) stored nodes). The same holds for `published`, the checkpoint the
   gateway saved in its checkpoint file: the only one it showed anyone, so the only one a
   report hands out (`Report.published`); a later stored one may never have been saved.

Checkpoints signed by a key not given are tampering, except those of a previous origin that a
new-origin link (a lost database's recovery) records as signed by that key, up to the link:
they are not verified (`Report.unverified`), though the later checkpoints cover their leaves.

Problems carry the first leaf position they concern, so a report says where the log went bad.
A key or saved checkpoint that cannot check this log at all (another log's key, a file that is
no signed checkpoint of it) raises UnusableInput instead: a mistake in the call, not tampering.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.audit.saved import is_checkpoint_file, slots
from gateway.storage import Database
from gateway.storage import audit as sql
from govshare.transparency import merkle, note, record

CHUNK_LEVEL = 14
"""Records are hashed in aligned chunks of 2**CHUNK_LEVEL leaves, bounding memory."""
MAX_PROBLEMS = 1000
"""Problems kept in a report; the first one matters most."""

MODIFIED_RECORD = "modified record"
MISSING_RECORD = "missing record"
EXTRA_RECORD = "extra record"
MODIFIED_NODE = "modified tree node"
MISSING_NODE = "missing tree node"
EXTRA_NODE = "extra tree node"
BAD_SIGNATURE = "bad signature"
BAD_CHECKPOINT = "bad checkpoint"
INDEX_MISMATCH = "index mismatch"
FORK = "fork"
TRUNCATION = "truncation"
TRUNCATION_OR_FORK = "truncation or fork"

SQLITE_HEADER = b"SQLite format 3\x00"
"""How a database file begins, telling a copy of the log from a saved checkpoint."""

Progress = Callable[[int, int], None]
"""Called with (leaves done, leaves in all) as the rebuild goes."""


class UnusableInput(Exception):
    """The key or the saved checkpoint given cannot check this log; the log is not at fault."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the log, at the first leaf position it concerns."""

    position: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} at position {self.position}: {self.detail}"


@dataclass
class Report:
    """The outcome of verify_log."""

    tree_size: int = 0
    root_hash: bytes = merkle.EMPTY_ROOT
    checkpoints: int = 0
    """Stored checkpoints checked."""
    published: bytes = b""
    """The checkpoint `published` gave, when it verified and the log extends it."""
    unverified: dict[str, int] = field(default_factory=dict)
    """Keys not given that signed the earliest checkpoints, and the largest size each
    signed: the leaves up to it are covered by later checkpoints, the signatures unchecked."""
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return min(self.problems) if self.problems else None

    def add(self, position: int, kind: str, detail: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(position, kind, detail))


@dataclass(frozen=True)
class _Stored:
    """A stored checkpoint whose signed note verified."""

    size: int
    root: bytes


@dataclass(frozen=True)
class _Saved:
    """The checkpoint to check against, and the tree nodes of the copy it came from, if any."""

    checkpoint: note.Checkpoint
    fetch: merkle.Fetch | None = None


def verify_log(
    database: Database | sqlite3.Connection | str | Path,
    verifier: note.NoteVerifier,
    against: bytes | Path | None = None,
    progress: Progress | None = None,
    previous: Sequence[note.NoteVerifier] = (),
    published: bytes | None = None,
) -> Report:
    """Verify the stored log against its signed checkpoints; see the module docstring. The
    whole check reads one snapshot, so a gateway writing meanwhile changes nothing it sees.
    Checkpoints may be signed by `verifier` or by one of the `previous` keys of the log.
    `against` is a signed checkpoint saved earlier (a note, or the bytes of the gateway's
    checkpoint file), or the path of an earlier copy of the database (its latest checkpoint is
    the one checked against). `published` is the signed checkpoint the gateway saved outside
    the database, checked as `against` is. UnusableInput if no stored checkpoint is signed by
    a key given, or `against` or `published` is no checkpoint of this log."""
    verifiers = [verifier, *previous]
    with ExitStack() as stack:
        conn = stack.enter_context(_connection(database))
        stack.enter_context(sql.snapshot(conn))
        saved = None if against is None else _open_saved(against, verifiers, stack)
        shown = None if published is None else _Saved(_saved_checkpoint(
            published, verifiers, "the checkpoint the gateway saved"))
        report = Report()
        stored, size = _check_checkpoints(conn, verifiers, report)
        sizes = {size, *(c.size for c in stored)}
        for given in (saved, shown):
            if given is not None and given.checkpoint.size <= size:
                sizes.add(given.checkpoint.size)
        wanted = {coord for s in sizes for coord in merkle._perfect(0, s)}
        rebuilt = _Rebuild(conn, size, wanted, report, progress)
        rebuilt.run()
        report.tree_size, report.root_hash = size, rebuilt.root(size)
        _classify(stored, rebuilt, report)
        # A record changed, missing or out of place explains what is indexed for it already.
        explained = {p.position for p in report.problems
                     if p.kind in (MODIFIED_RECORD, MISSING_RECORD, EXTRA_RECORD)}
        for leaf_index, what in sql.index_mismatches(conn):
            if leaf_index not in explained:
                report.add(leaf_index, INDEX_MISMATCH,
                           f"the {what} stored for listings disagree with the record")
        for leaf_index, what in sql.subject_index_mismatches(conn):
            if leaf_index not in explained:
                report.add(leaf_index, INDEX_MISMATCH,
                           f"the {what} disagrees with the record's subjects")
        if saved is not None:
            _check_against(saved, conn, rebuilt, size, report)
        if shown is not None and _check_against(shown, conn, rebuilt, size, report):
            report.published = published
        return report


@contextmanager
def _connection(database: Database | sqlite3.Connection | str | Path) -> Iterator[Any]:
    if isinstance(database, sqlite3.Connection):
        yield database
    elif isinstance(database, Database):
        yield database.reader()
    else:
        conn = sql.connect_readonly(database)
        try:
            yield conn
        finally:
            conn.close()


def open_checkpoint(signed: bytes, verifiers: Sequence[note.NoteVerifier]) -> note.Checkpoint:
    """The checkpoint of a signed note; NoteError unless a key of `verifiers` whose name is
    the checkpoint's origin signed it."""
    checkpoint = note.Checkpoint.parse(note.open_note(signed, verifiers))
    named = [v for v in verifiers if v.name == checkpoint.origin]
    if not named:
        raise note.NoteError(f"checkpoint is for log {checkpoint.origin!r}, not"
                             f" {' or '.join(repr(v.name) for v in verifiers)}")
    try:
        note.open_note(signed, named)  # a key of another log may have signed it
    except note.UnknownKeyError:
        raise note.NoteError(f"checkpoint is not signed by the key of {checkpoint.origin!r}"
                             ) from None
    return checkpoint


def _check_checkpoints(
    conn: sqlite3.Connection, verifiers: Sequence[note.NoteVerifier], report: Report
) -> tuple[list[_Stored], int]:
    """Checklist step 1: the checkpoints whose notes hold, and the largest size claimed.

    A bad checkpoint is reported at the first leaf only it vouches for (the previous size).
    UnusableInput when every checkpoint is signed by keys other than those given.
    """
    stored, previous, unknown = [], 0, 0
    ended = _previous_origins(conn)
    others: dict[str, None] = {}
    """Keys signing the checkpoints no key given signed, in order."""
    for row in sql.checkpoints(conn):
        size, signed = row.tree_size, bytes(row.note)
        report.checkpoints += 1
        try:
            checkpoint = open_checkpoint(signed, verifiers)
            if checkpoint.size != size or checkpoint.root_hash != bytes(row.root_hash):
                report.add(previous, BAD_CHECKPOINT,
                           f"the row of size {size} disagrees with its signed note")
            else:
                stored.append(_Stored(size, checkpoint.root_hash))
        except note.UnknownKeyError:
            signers = note.signing_keys(signed)
            unknown += 1
            others.update(dict.fromkeys(signers))
            if all(size <= ended.get(key, -1) for key in signers):
                report.unverified.update(dict.fromkeys(signers, size))
            else:
                report.add(previous, BAD_SIGNATURE,
                           f"checkpoint of size {size} is signed by {', '.join(signers)}, no"
                           " key given (give a previous key of the log with --key too)")
        except note.NoteError as exc:
            report.add(previous, BAD_SIGNATURE, f"checkpoint of size {size}: {exc}")
        previous = size
    if unknown and unknown == report.checkpoints:
        raise UnusableInput(f"the key {_names(verifiers)} does not belong to this log (its"
                            f" checkpoints are signed by {', '.join(others)})")
    return stored, previous


def _previous_origins(conn: sqlite3.Connection) -> dict[str, int]:
    """The keys that signed the checkpoints the log's new-origin links record, each with the
    link's position: a previous origin's checkpoints up to there may be signed by a key not
    given without being tampering."""
    ended: dict[str, int] = {}
    for index, data in sql.records_of_action(conn, record.NEW_ORIGIN):
        with contextlib.suppress(note.NoteError, ValueError, LookupError):
            signed = record.decode(data)["reason"].encode()
            ended.update(dict.fromkeys(note.signing_keys(signed), index))
    return ended


def _names(verifiers: Sequence[note.NoteVerifier]) -> str:
    return " or ".join(f"{v.name}+{v.key_id.hex()}" for v in verifiers)


class _Rebuild:
    """Rebuilds the tree of `size` leaves from the records and compares the stored nodes."""

    def __init__(self, conn: sqlite3.Connection, size: int, wanted: set[merkle.Coord],
                 report: Report, progress: Progress | None):
        self.conn, self.size, self.report, self.progress = conn, size, report, progress
        self.wanted: dict[int, set[int]] = {}
        for level, idx in wanted:
            self.wanted.setdefault(level, set()).add(idx)
        self.kept: dict[merkle.Coord, bytes] = {}
        self.missing: list[int] = []
        """Leaf positions without a stored record."""
        self.node_problems: list[tuple[int, int, str]] = []
        """(level, idx, kind) of stored nodes that differ from the rebuilt ones."""

    def run(self) -> None:
        chunk = 1 << CHUNK_LEVEL
        tops: list[bytes] = []
        for begin in range(0, self.size, chunk):
            end = min(begin + chunk, self.size)
            stored = sql.hashes_between(self.conn, merkle.stored_index(0, begin),
                                        merkle.stored_index(0, end))
            levels = self._levels(self._leaf_hashes(begin, end), 0, begin, stored)
            if end - begin == chunk:
                tops.append(levels[-1][0])
            if self.progress:
                self.progress(end, self.size)
        upper = [merkle.stored_index(level, idx)
                 for level in range(CHUNK_LEVEL + 1, self.size.bit_length())
                 for idx in range(self.size >> level)]
        self._levels(tops, CHUNK_LEVEL, 0, sql.hashes_at(self.conn, upper), compare_first=False)
        self._check_records_beyond()
        self._check_nodes_beyond()

    def root(self, size: int) -> bytes:
        return merkle.root_at(size, lambda coords: [self.kept[c] for c in coords])

    def _leaf_hashes(self, begin: int, end: int) -> list[bytes]:
        """Hashes of the records in [begin, end); a missing record is reported as such."""
        found = sql.records_between(self.conn, begin, end)
        if len(found) == end - begin:
            try:
                return [merkle.leaf_hash(data) for _, data in found]
            except TypeError:  # a record edited into another SQLite type: hash what it says
                found = [(index, _as_bytes(data)) for index, data in found]
                return [merkle.leaf_hash(data) for _, data in found]
        present = {index: _as_bytes(data) for index, data in found}
        for index in range(begin, end):
            if index not in present:
                self.missing.append(index)
                self.report.add(index, MISSING_RECORD, f"leaf {index} has no stored record")
        return [merkle.leaf_hash(present.get(index, b"")) for index in range(begin, end)]

    def _levels(self, nodes: list[bytes], level: int, first_leaf: int,
                stored: dict[int, bytes], compare_first: bool = True) -> list[list[bytes]]:
        """Every perfect-subtree level from `nodes` (at `level`) up, compared with `stored`
        (node hashes by stored index)."""
        levels = []
        start = first_leaf >> level
        while nodes:
            if compare_first or levels:
                self._compare(level, start, nodes, stored)
            for idx in self.wanted.get(level, ()):
                if start <= idx < start + len(nodes):
                    self.kept[(level, idx)] = nodes[idx - start]
            levels.append(nodes)
            nodes = [merkle.node_hash(a, b)
                     for a, b in zip(nodes[::2], nodes[1::2], strict=False)]
            level, start = level + 1, start >> 1
        return levels

    def _compare(self, level: int, start: int, nodes: list[bytes],
                 stored: dict[int, bytes]) -> None:
        for offset, expected in enumerate(nodes):
            idx = start + offset
            found = stored.get(merkle.stored_index(level, idx))
            if found == expected:
                continue
            if len(self.node_problems) >= MAX_PROBLEMS:
                return
            if found is None:
                self.node_problems.append((level, idx, MISSING_NODE))
            elif not (level == 0 and idx in self.missing):
                self.node_problems.append((level, idx, MODIFIED_NODE))

    def _check_records_beyond(self) -> None:
        extra = sql.first_leaf_from(self.conn, self.size)
        if extra is not None:
            self.report.add(max(extra, 0), EXTRA_RECORD,
                            f"leaf {extra} is stored but no signed checkpoint covers it (the"
                            f" latest is for {self.size} leaves)")

    def _check_nodes_beyond(self) -> None:
        # A tree of n leaves holds exactly the nodes stored before leaf n's hash would be.
        extra = sql.first_node_from(self.conn, merkle.stored_index(0, self.size))
        if extra is not None:
            level, idx = merkle.split_stored_index(extra) if extra >= 0 else (0, -1)
            node = (level, idx) if extra >= 0 else f"id {extra}"
            self.report.add(max(idx << level, self.size), EXTRA_NODE,
                            f"tree node {node} is stored but a tree of {self.size} leaves has"
                            " no such node")


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _classify(stored: list[_Stored], rebuilt: _Rebuild, report: Report) -> None:
    """Checklist step 3, and what each stored node that differs says about the log.

    A stored leaf hash that differs from its record's hash means a modified record when the
    signed root covering it disagrees too, and a modified stored hash otherwise. Inner nodes
    over a changed record differ as a consequence and are not reported again.
    """
    sizes = sorted(c.size for c in stored)
    bad = {c.size for c in stored if rebuilt.root(c.size) != c.root}
    changed = sorted([*rebuilt.missing,
                      *(idx for level, idx, _ in rebuilt.node_problems if level == 0)])
    for level, idx, kind in rebuilt.node_problems:
        begin, end = idx << level, (idx + 1) << level
        later = bisect.bisect_right(sizes, begin)
        covering = sizes[later] if later < len(sizes) else None
        if level == 0 and kind == MODIFIED_NODE and covering in bad:
            report.add(begin, MODIFIED_RECORD,
                       f"record {begin} does not hash to the leaf the log committed to")
        elif level == 0 or not _any_between(changed, begin, end):
            detail = "is not stored" if kind == MISSING_NODE else \
                "differs from the one rebuilt from the records"
            report.add(begin, kind, f"tree node ({level}, {idx}) {detail}")
    unexplained = [size for size in sorted(bad) if not _any_between(changed, 0, size)]
    if unexplained:
        size = unexplained[0]
        previous = max((s for s in sizes if s < size), default=0)
        report.add(previous, MODIFIED_RECORD,
                   f"the records in leaves {previous}..{size - 1} do not hash to the root"
                   f" checkpoint {size} signed (rewritten together with their tree nodes)")


def _any_between(positions: list[int], begin: int, end: int) -> bool:
    """Whether sorted `positions` holds a value in [begin, end)."""
    at = bisect.bisect_left(positions, begin)
    return at < len(positions) and positions[at] < end


def _open_saved(against: bytes | Path, verifiers: Sequence[note.NoteVerifier],
                stack: ExitStack) -> _Saved:
    """The checkpoint to check against: the bytes of a signed one, or a database copy's latest
    (whose stored tree must lead to it); UnusableInput if it is no checkpoint of this log."""
    if isinstance(against, bytes):
        return _Saved(_given_checkpoint(against, verifiers))
    what = f"the copy of the log {against}"
    try:
        copy = stack.enter_context(_connection(against))
        stack.enter_context(sql.snapshot(copy))
        latest = sql.latest_checkpoint(copy)
        if latest is None:
            raise UnusableInput(f"{what} has no checkpoint")
        checkpoint = _saved_checkpoint(bytes(latest.note), verifiers, what)
        fetch = functools.partial(sql.fetch_nodes, copy)
        if merkle.root_at(checkpoint.size, fetch) != checkpoint.root_hash:
            raise UnusableInput(f"{what} holds a tree that does not lead to its own latest"
                                " checkpoint: verify it first")
    except (sqlite3.Error, LookupError) as exc:
        raise UnusableInput(f"{what} cannot be read as a database of the log: {exc}") from None
    return _Saved(checkpoint, fetch)


def _given_checkpoint(data: bytes, verifiers: Sequence[note.NoteVerifier]) -> note.Checkpoint:
    """The checkpoint in a file given to check against: a signed checkpoint note, or the
    gateway's checkpoint file (its latest slot that verifies: a slot torn by a crash does
    not); UnusableInput, naming the formats read, for any other file."""
    if is_checkpoint_file(data):
        what = "the gateway's checkpoint file"
        problems = []
        for signed in slots(data):
            try:
                return _saved_checkpoint(signed, verifiers, what)
            except UnusableInput as exc:
                problems.append(exc)
        raise problems[0] if problems else UnusableInput(f"{what} holds no checkpoint")
    try:
        note.signing_keys(data)
    except note.NoteError:
        raise UnusableInput("the saved checkpoint is none of the files it can be: a signed"
                            " checkpoint note (as audit verify --save-checkpoint writes it), the"
                            " gateway's checkpoint file ([audit] checkpoint_file) or an earlier"
                            " copy of the database") from None
    return _saved_checkpoint(data, verifiers, "the saved checkpoint")


def _saved_checkpoint(signed: bytes, verifiers: Sequence[note.NoteVerifier],
                      what: str) -> note.Checkpoint:
    try:
        return open_checkpoint(signed, verifiers)
    except note.UnknownKeyError:
        raise UnusableInput(f"{what} does not belong to this log: it is signed by"
                            f" {', '.join(note.signing_keys(signed))}, not by {_names(verifiers)}"
                            ) from None
    except note.NoteError as exc:
        raise UnusableInput(f"{what} is not a valid signed checkpoint of this log: {exc}"
                            ) from None


def _check_against(saved: _Saved, conn: sqlite3.Connection, rebuilt: _Rebuild, size: int,
                   report: Report) -> bool:
    """Checklist step 5: the saved checkpoint's tree must be a prefix of the rebuilt one
    (whether it is)."""
    earlier = saved.checkpoint.size
    if earlier <= size and rebuilt.root(earlier) == saved.checkpoint.root_hash:
        return True
    if earlier <= size and _stored_root(conn, earlier) == saved.checkpoint.root_hash:
        # The stored tree leads to the saved root, the records do not: the rebuild reported
        # where, at the first record that changed.
        return False
    agree = _agreeing_prefix(saved, conn, min(earlier, size))
    if agree is None:
        _unlocated(earlier, size, report)
    elif agree < min(earlier, size):
        report.add(agree, FORK,
                   f"leaf {agree} differs from the earlier copy's, whose checkpoint of {earlier}"
                   f" leaves was signed (the first {agree} leaves agree): the history was"
                   " rewritten")
    elif earlier > size:
        report.add(size, TRUNCATION,
                   f"the log holds {size} leaves but a checkpoint for {earlier} was saved"
                   f" earlier: leaves {size} to {earlier - 1} are gone")
    return False


def _stored_root(conn: sqlite3.Connection, size: int) -> bytes | None:
    """The root of the first `size` leaves from the stored tree nodes (None: one is missing)."""
    try:
        return merkle.root_at(size, functools.partial(sql.fetch_nodes, conn))
    except LookupError:
        return None


def _unlocated(earlier: int, size: int, report: Report) -> None:
    """A saved checkpoint the log does not extend, with only its signed root to go by."""
    if earlier > size:
        report.add(0, TRUNCATION_OR_FORK,
                   f"the log holds {size} leaves but a checkpoint for {earlier} was saved"
                   " earlier: it was truncated or forked, and a signed root cannot say where"
                   " (--against an earlier copy of the database names the first leaf that"
                   " differs)")
    else:
        report.add(0, FORK,
                   f"the first {earlier} leaves do not hash to the root a saved checkpoint"
                   f" signed: the history was rewritten, somewhere in leaves 0 to {earlier - 1}"
                   " (a signed root cannot say where; --against an earlier copy of the"
                   " database names the first leaf that differs)")


def _agreeing_prefix(saved: _Saved, conn: sqlite3.Connection, upto: int) -> int | None:
    """How many leading leaves the log and the earlier copy share (at most `upto`), by binary
    search over their prefix roots (once two prefixes differ, every longer one does); None
    without a copy, or when a tree node either side needs is missing."""
    if saved.fetch is None:
        return None
    fetch = functools.partial(sql.fetch_nodes, conn)
    lo, hi = 0, upto
    try:
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if merkle.root_at(mid, saved.fetch) == merkle.root_at(mid, fetch):
                lo = mid
            else:
                hi = mid - 1
    except LookupError:
        return None
    return lo
