"""The blob store: bounded hashed-file stamps, uploads refused and removed on a full disk, the
folder claimed by its database only, one namespace per publishing agency, and the conversion of
a folder of the global layout of earlier releases."""

import errno
import hashlib
import os
from pathlib import Path

import pytest

from gateway import blobs
from gateway.blobs import BlobStore
from govshare import errors, spool

A, B, C = "gd-health", "zj-stats", "sz-market"


def test_hashed_stamps_are_bounded_and_recognised(tmp_path, monkeypatch):
    monkeypatch.setattr(blobs, "HASHED_KEPT", 3)
    store = BlobStore(tmp_path / "blobs")
    store.recover(())
    files = []
    for n in range(5):
        path = tmp_path / f"f{n}"
        path.write_bytes(bytes([n]))
        files.append(path)
        store.hashed(A, f"{n:064x}", os.stat(path))
    with files[4].open("rb") as handle:
        assert store.unchanged_since_hashed(A, f"{4:064x}", handle)
        assert not store.unchanged_since_hashed(B, f"{4:064x}", handle)  # another's blob
    with files[0].open("rb") as handle:
        assert not store.unchanged_since_hashed(A, f"{0:064x}", handle)  # forgotten: hash again
    files[4].write_bytes(b"changed")
    with files[4].open("rb") as handle:
        assert not store.unchanged_since_hashed(A, f"{4:064x}", handle)


def test_discarding_an_upload_on_a_full_disk_still_removes_it(tmp_path, monkeypatch):
    def full(self, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool.DirectFile, "_pwrite", full)
    monkeypatch.setattr(blobs, "open_direct", lambda fd, expected: spool.DirectFile(fd))
    store = BlobStore(tmp_path / "blobs")
    store.recover(())
    upload = blobs.Upload(store.tmp, spool.INLINE_UP_TO + 1)
    with pytest.raises(errors.Unavailable) as refused:
        upload.write(b"x" * spool.DIRECT_BUFFER)
        upload.finish()
    assert refused.value.reason == "STORAGE_FULL"
    upload.discard()
    assert list(store.tmp.iterdir()) == []


def _store_blob(store: BlobStore, owner: str, digest: str) -> None:
    path = store.path(owner, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_recovery_removes_unnamed_blobs_only_from_a_folder_proven_to_be_the_databases(tmp_path):
    mine, orphan = f"{1:064x}", f"{2:064x}"
    store = BlobStore(tmp_path / "blobs")
    store.recover((), tmp_path / "gateway.db")  # a new folder is claimed at once
    assert (store.root / blobs.OWNER_FILE).read_text().strip() == "../gateway.db"
    _store_blob(store, A, mine)
    _store_blob(store, A, orphan)
    _store_blob(store, B, mine)  # no version of B names it
    assert store.recover({(A, mine)}, tmp_path / "gateway.db") == 2
    assert store.exists(A, mine) and not store.exists(A, orphan) and not store.exists(B, mine)
    with pytest.raises(blobs.ForeignFolder, match="belongs to the database"):
        store.recover({(A, mine)}, tmp_path / "other.db")
    assert store.exists(A, mine)


def test_a_folder_from_before_the_claim_is_adopted_without_deleting_anything(tmp_path):
    mine, orphan = f"{1:064x}", f"{2:064x}"
    store = BlobStore(tmp_path / "blobs")
    store.recover(())
    _store_blob(store, A, mine)
    _store_blob(store, A, orphan)
    with pytest.raises(blobs.ForeignFolder, match="does not name"):
        store.recover((), tmp_path / "other.db")  # names none of its blobs: not its folder
    assert store.recover({(A, mine)}, tmp_path / "gateway.db") == 0  # adopted: none removed yet
    assert store.exists(A, orphan)
    assert store.recover({(A, mine)}, tmp_path / "gateway.db") == 1  # proven now
    assert not store.exists(A, orphan)


def test_a_new_folder_is_not_claimed_by_a_database_whose_content_is_elsewhere(tmp_path):
    mine = f"{1:064x}"
    store = BlobStore(tmp_path / "blobs-new")
    with pytest.raises(blobs.ForeignFolder, match=(
            r"names 1 stored contents and the blob folder .* holds none and names no database:"
            r" the database's content is elsewhere; set \[storage\] blobs to the folder")):
        store.recover({(A, mine)}, tmp_path / "gateway.db")
    assert not (store.root / blobs.OWNER_FILE).exists()
    (store.root / blobs.OWNER_FILE).write_text("../gateway.db\n")  # the content is lost: serve
    assert store.recover({(A, mine)}, tmp_path / "gateway.db") == 0


def _commit(store: BlobStore, owner: str, content: bytes) -> str:
    with store.upload(len(content)) as upload:
        upload.write(content)
        upload.finish()
        store.commit(owner, upload)
        assert upload.placed
    return upload.hasher.hexdigest()


def test_storing_your_own_content_again_does_what_storing_new_content_does(tmp_path):
    # The upload is moved over the agency's own identical file and counts as just hashed.
    store = BlobStore(tmp_path / "blobs")
    store.recover(())
    digest = _commit(store, A, b"patient records")
    before = os.stat(store.path(A, digest))
    assert _commit(store, A, b"patient records") == digest
    with store.open(A, digest) as handle:
        assert os.fstat(handle.fileno()).st_ino != before.st_ino  # the new upload's file
        assert store.unchanged_since_hashed(A, digest, handle)
        assert handle.read() == b"patient records"
    assert list(store.tmp.iterdir()) == []


def test_storing_content_another_agency_stored_leaves_its_file_untouched(tmp_path):
    # The same bytes from another agency become a file of its own: the first agency's file is
    # neither replaced nor unlinked, so nothing about it (or the time taken) depends on it.
    store = BlobStore(tmp_path / "blobs")
    store.recover(())
    digest = _commit(store, A, b"patient records")
    before = os.stat(store.path(A, digest))
    assert _commit(store, B, b"patient records") == digest
    assert _stamp(os.stat(store.path(A, digest))) == _stamp(before)
    assert os.stat(store.path(B, digest)).st_ino != before.st_ino
    assert store.verify(A, digest) and store.verify(B, digest)


def _stamp(status: os.stat_result) -> tuple[int, ...]:
    return (status.st_ino, status.st_nlink, status.st_size, status.st_mtime_ns,
            status.st_ctime_ns)


def _legacy_blob(store: BlobStore, content: bytes) -> str:
    """A blob where releases before per-agency namespaces stored it."""
    digest = hashlib.sha256(content).hexdigest()
    path = _legacy_path(store, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return digest


def _legacy_path(store: BlobStore, digest: str) -> Path:
    return store.root / "sha256" / digest[:2] / digest[2:4] / digest


def _legacy_folder(tmp_path) -> tuple[BlobStore, str, str]:
    """A claimed folder of the global layout: content A and B both published, content only C
    did, and content no version names."""
    store = BlobStore(tmp_path / "blobs")
    store.root.mkdir()
    (store.root / blobs.OWNER_FILE).write_text("../gateway.db\n")
    shared, own, _ = (_legacy_blob(store, c) for c in (b"shared", b"own", b"orphan"))
    return store, shared, own


def test_a_folder_of_the_global_layout_is_converted_to_namespaces_at_start(tmp_path):
    store, shared, own = _legacy_folder(tmp_path)
    named = {(A, shared), (B, shared), (C, own)}
    assert store.recover(named, tmp_path / "gateway.db") == 1  # the orphan
    assert set(store.stored()) == named
    assert all(store.verify(owner, digest) for owner, digest in named)
    # Content several agencies published before is still stored once, under two names.
    assert os.stat(store.path(A, shared)).st_ino == os.stat(store.path(B, shared)).st_ino
    assert os.stat(store.path(C, own)).st_nlink == 1
    assert not (store.root / "sha256").exists()


def test_a_conversion_interrupted_halfway_is_finished_by_the_next_start(tmp_path, monkeypatch):
    store, shared, own = _legacy_folder(tmp_path)
    named = {(A, shared), (B, shared), (C, own)}
    real_link, linked = os.link, []

    def crash_at_the_second_link(source, target):  # the process dies between two names
        if linked:
            raise KeyboardInterrupt
        linked.append(real_link(source, target))

    monkeypatch.setattr(os, "link", crash_at_the_second_link)
    with pytest.raises(KeyboardInterrupt):
        store.recover(named, tmp_path / "gateway.db")
    monkeypatch.setattr(os, "link", real_link)
    assert linked and set(store.stored()) < named
    assert all(store.exists(owner, digest) or _legacy_path(store, digest).exists()
               for owner, digest in named)  # nothing lost
    store.recover(named, tmp_path / "gateway.db")
    assert set(store.stored()) == named
    assert all(store.verify(owner, digest) for owner, digest in named)
    assert not (store.root / "sha256").exists()


def test_a_refused_start_converts_nothing(tmp_path):
    store, shared, _ = _legacy_folder(tmp_path)
    before = sorted(p.relative_to(store.root) for p in store.root.rglob("*"))
    with pytest.raises(blobs.ForeignFolder):
        store.recover({(A, shared)}, tmp_path / "other.db")
    after = sorted(p.relative_to(store.root) for p in store.root.rglob("*"))
    assert [p for p in after if p not in before] == [Path("agencies"), Path("tmp")]
    assert store.stored() == {}
