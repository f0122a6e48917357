"""The content-addressed store of dataset content: one file per publishing agency and SHA-256.

Layout under the configured folder (`config.storage.blobs`):

    agencies/<agency id>/sha256/ab/cd/abcd...   a blob the agency published, by hex SHA-256
    tmp/                   uploads in progress (same filesystem, so the final move is atomic)
    database               the owner file: the database whose rows name these blobs

An upload streams into a temp file while it is hashed (`Upload.write`, through a
`spool.Spool`), is fsynced (`Upload.finish`), and is moved into its publisher's namespace by
`BlobStore.commit` inside the catalog's unit-of-work change, so a blob appears only together with
the row that names it. Each agency's content is kept apart: nothing an agency uploads replaces,
finds or frees a file another agency's publish created, so the same bytes from two agencies are
two files, and what a publish does and costs never depends on what other agencies hold. An
agency's own identical content is kept once: its upload replaces its own stored file with the
same bytes, fsynced and just hashed.

At start-up `recover()` removes what a crash left: temp files, and blobs moved into place by a
change whose transaction never committed (no row of that publisher names them). It also converts
a folder of earlier releases (one global `sha256/` namespace): each stored blob is hard-linked
into the namespace of every agency whose versions name it, then its global name is removed, so
content several agencies published before the conversion stays one file with several
names (see docs/SECURITY.md). A crash halfway leaves the global file in place and the next start
finishes the conversion. A disk that fills up (or a quota reached) while an upload is written or
moved is refused as errors.Unavailable STORAGE_FULL, and the upload's temp file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from certs.files import fsync_folder, replace_file
from govshare import errors
from govshare.names import ID_PATTERN
from govshare.signing import StreamHasher
from govshare.spool import Spool, open_direct

_READ_SIZE = 1024 * 1024
HASHED_KEPT = 4096
"""How many blobs' last-hashed file stamps are remembered (a few hundred KiB)."""


FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def _refusing_full_disk() -> Iterator[None]:
    """Turn a full disk or an exhausted quota into a typed refusal (audited like any other).

    UNAVAILABLE, as a full database is: the condition is the gateway's and passes once an
    administrator frees space, while RESOURCE_EXHAUSTED here tells a publisher that its own
    request passed a limit (DATASET_TOO_LARGE, rates), which retrying could never fix."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FULL:
            raise
        raise errors.Unavailable(
            f"the gateway's content store is full ({os.strerror(exc.errno)}): nothing was kept;"
            " publish again once an administrator has freed space", reason="STORAGE_FULL",
        ) from exc


OWNER_FILE = "database"
"""The file in the blob folder naming, relative to the folder, the database whose rows name
its blobs."""


class ForeignFolder(Exception):
    """The blob folder belongs to another database, or the database's content is in another
    folder; the message says what to change."""


class Upload:
    """Content being received: written to a temp file and hashed in one pass."""

    def __init__(self, folder: Path, expected: int):
        fd, name = tempfile.mkstemp(dir=folder, prefix="upload-")
        self.path = Path(name)
        self._spool = Spool(open_direct(fd, expected=expected), expected=expected)
        self.placed = False
        """Whether `BlobStore.commit` moved it into place (its temp file is gone then)."""

    def write(self, chunk: bytes) -> None:
        with _refusing_full_disk():
            self._spool.write(chunk)

    @property
    def size(self) -> int:
        """Bytes received so far."""
        return self._spool.size

    @property
    def hasher(self) -> StreamHasher:
        """The content's hash; complete after `finish`."""
        return self._spool.hasher

    def finish(self) -> None:
        """Wait for every byte, then fsync, so the later move publishes durable bytes."""
        with _refusing_full_disk():
            self._spool.finish()
            self._spool.close()

    def discard(self) -> None:
        """Close and remove the temp file if it is still there. Its bytes are thrown away, so
        failing to write them out while closing (the disk still full) does not matter."""
        try:
            with contextlib.suppress(OSError):
                self._spool.close()
        finally:
            self.path.unlink(missing_ok=True)


class BlobStore:
    """Blobs named by (publishing agency id, hex SHA-256) under `root`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.agencies = self.root / "agencies"
        self._legacy = self.root / "sha256"
        self._hashed: OrderedDict[tuple[str, str], tuple[int, ...]] = OrderedDict()
        self._hashed_lock = threading.Lock()

    def recover(self, named: Collection[tuple[str, str]], database: Path | None = None) -> int:
        """Create the folders, convert a folder of earlier releases, remove the uploads a crash
        left behind and the blobs no row names ((publisher, hex SHA-256) pairs in `named`);
        returns how many files were removed.

        With `database`, blobs no row names are removed only once the folder is proven to be
        that database's (`claim`): a gateway started over another database with the same folder
        would otherwise delete every blob the first one names. The claim is checked before
        anything is converted or removed."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # dataset content is for the gateway only
        self.agencies.mkdir(exist_ok=True)
        legacy = sorted(self._legacy.glob("*/*/*"))
        stored = self.stored()
        proven = database is None or self.claim(
            database, {digest for _, digest in named},
            {path.name for path in legacy} | {digest for _, digest in stored})
        removed = self._convert(legacy, named, proven)
        leftovers = [*self.tmp.iterdir(),
                     *(path for key, path in stored.items() if proven and key not in named)]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return removed + len(leftovers)

    def stored(self) -> dict[tuple[str, str], Path]:
        """Every blob in the agencies' namespaces, by (agency id, hex SHA-256)."""
        return {(path.parents[3].name, path.name): path
                for path in self.agencies.glob("*/sha256/*/*/*")}

    def _convert(self, legacy: list[Path], named: Collection[tuple[str, str]],
                 proven: bool) -> int:
        """Give every publisher naming a blob of the global layout its own name for it, then
        drop the global name; returns how many unnamed global blobs were removed (only from a
        proven folder). Every new name is durable before the global one goes, so a crash
        halfway loses nothing and the next start finishes."""
        owners: dict[str, list[str]] = {}
        for owner, digest in named:
            owners.setdefault(digest, []).append(owner)
        removed = 0
        for path in legacy:
            if path.name not in owners and not proven:
                continue
            for owner in owners.get(path.name, ()):  # a hard link: O(1), the bytes stay once
                self._link(path, owner)
            path.unlink()
            fsync_folder(path.parent)
            removed += path.name not in owners
        for folder in sorted(self._legacy.glob("**/"), reverse=True):
            with contextlib.suppress(OSError):  # one still holding blobs stays
                folder.rmdir()
        return removed

    def _link(self, blob: Path, owner: str) -> None:
        """Give the owner its own durable name for a blob of the global layout (kept if a start
        interrupted earlier already did)."""
        target = self.path(owner, blob.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.link(blob, target)
        fsync_folder(target.parent)

    def claim(self, database: Path, named: Collection[str], stored: set[str]) -> bool:
        """Whether this folder is proven to belong to `database`, recording it if the folder is
        new; ForeignFolder if it belongs to another database (`named` and `stored`: the hex
        SHA-256s the database names and the folder holds).

        The owner file names the database relative to the folder, so a network folder moved as
        a whole keeps its claim. A folder with blobs but no owner file (made before it existed)
        is adopted without a proof only if the database names some of its blobs; a folder
        without either is claimed only by a database that names no content yet (one that does
        was given a new folder, and every fetch from it would find its content missing)."""
        owner_file = self.root / OWNER_FILE
        expected = os.path.relpath(database.resolve(), self.root.resolve())
        if owner_file.is_file():
            owner = owner_file.read_text().strip()
            if owner != expected:
                raise ForeignFolder(
                    f"the blob folder {self.root} belongs to the database"
                    f" {os.path.normpath(self.root / owner)}, not {database}: give this"
                    f" database its own [storage] blobs folder (if {database} really replaces"
                    f" the other, write {expected!r} into {owner_file})")
            return True
        if stored and not stored & set(named):
            raise ForeignFolder(
                f"the blob folder {self.root} holds content the database {database} does not"
                " name: give this database its own [storage] blobs folder")
        if named and not stored:
            raise ForeignFolder(
                f"the database {database} names {len(named)} stored contents and the blob"
                f" folder {self.root} holds none and names no database: the database's"
                " content is elsewhere; set"
                " [storage] blobs to the folder holding it (the one whose file"
                f" {OWNER_FILE!r} names this database). If that content is lost, write"
                f" {expected!r} into {owner_file} to serve without it")
        replace_file(owner_file, (expected + "\n").encode())
        return not stored

    def path(self, owner: str, sha256_hex: str) -> Path:
        """Where the agency `owner`'s blob `sha256_hex` is (or would be) stored."""
        if not ID_PATTERN.fullmatch(owner):
            raise ValueError(f"not an agency id: {owner!r}")
        if len(sha256_hex) != 64 or not all(c in "0123456789abcdef" for c in sha256_hex):
            raise ValueError(f"not a hex SHA-256: {sha256_hex!r}")
        return (self.agencies / owner / "sha256" / sha256_hex[:2] / sha256_hex[2:4]
                / sha256_hex)

    def exists(self, owner: str, sha256_hex: str) -> bool:
        return self.path(owner, sha256_hex).is_file()

    def open(self, owner: str, sha256_hex: str) -> BinaryIO:
        """The stored content for reading (FileNotFoundError when absent)."""
        return self.path(owner, sha256_hex).open("rb")

    def verify(self, owner: str, sha256_hex: str) -> bool:
        """Re-hash a stored blob: True when its bytes still match its name."""
        hasher = StreamHasher()
        with self.open(owner, sha256_hex) as handle:
            while block := handle.read(_READ_SIZE):
                hasher.update(block)
        return hasher.hexdigest() == sha256_hex

    @contextmanager
    def upload(self, expected: int) -> Iterator[Upload]:
        """A temp file to stream `expected` bytes into; it is removed on leaving unless `commit`
        moved it."""
        upload = Upload(self.tmp, expected)
        try:
            yield upload
        finally:
            upload.discard()

    def commit(self, owner: str, upload: Upload) -> None:
        """Move a finished upload into the agency `owner`'s namespace, over the identical
        content `owner` already stored if there is any (same bytes: readers with the old file
        open read on). Call inside the change that records the blob.

        A change runs again when its batch is redone (audit.log); the rolled-back first run
        left the blob it moved in place, and this run keeps it."""
        if upload.placed:
            return
        digest = upload.hasher.hexdigest()
        target = self.path(owner, digest)
        with _refusing_full_disk():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(upload.path, target)
            upload.placed = True
            fsync_folder(target.parent)
        self.hashed(owner, digest, os.stat(target))

    def remove(self, owner: str, sha256_hex: str) -> None:
        """Remove a blob that no committed row names (one a failed change moved into place)."""
        self.path(owner, sha256_hex).unlink(missing_ok=True)

    def unchanged_since_hashed(self, owner: str, sha256_hex: str, handle: BinaryIO) -> bool:
        """Whether the open blob is the very file last hashed to `sha256_hex`, untouched since.

        Any write or chmod moves a file's ctime, which user space cannot set back, so a blob
        whose (inode, size, mtime, ctime) is unchanged need not be hashed again to be served.
        (Silent media corruption would not move ctime; the SDK's own hash catches that.)
        """
        key = (owner, sha256_hex)
        with self._hashed_lock:
            stamp = self._hashed.get(key)
            if stamp is not None:
                self._hashed.move_to_end(key)
        return stamp == _stamp(os.fstat(handle.fileno()))

    def hashed(self, owner: str, sha256_hex: str, status: os.stat_result) -> None:
        """Record that the agency `owner`'s file with `status` was just hashed to `sha256_hex`
        (the most recently used HASHED_KEPT blobs are remembered; older ones are hashed again
        when fetched)."""
        key = (owner, sha256_hex)
        with self._hashed_lock:
            self._hashed[key] = _stamp(status)
            self._hashed.move_to_end(key)
            while len(self._hashed) > HASHED_KEPT:
                self._hashed.popitem(last=False)


def _stamp(status: os.stat_result) -> tuple[int, ...]:
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
