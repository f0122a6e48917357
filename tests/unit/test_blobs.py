"""The blob store: bounded hashed-file stamps, uploads refused and removed on a full disk, the
folder claimed by its database only."""

import errno
import os

import pytest

from gateway import blobs, errors, spool
from gateway.blobs import BlobStore


def test_hashed_stamps_are_bounded_and_recognised(tmp_path, monkeypatch):
    monkeypatch.setattr(blobs, "HASHED_KEPT", 3)
    store = BlobStore(tmp_path / "blobs")
    store.recover(())
    files = []
    for n in range(5):
        path = tmp_path / f"f{n}"
        path.write_bytes(bytes([n]))
        files.append(path)
        store.hashed(f"{n:064x}", os.stat(path))
    with files[4].open("rb") as handle:
        assert store.unchanged_since_hashed(f"{4:064x}", handle)
    with files[0].open("rb") as handle:
        assert not store.unchanged_since_hashed(f"{0:064x}", handle)  # forgotten: hash again
    files[4].write_bytes(b"changed")
    with files[4].open("rb") as handle:
        assert not store.unchanged_since_hashed(f"{4:064x}", handle)


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


def _store_blob(store: BlobStore, digest: str) -> None:
    path = store.path(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_recovery_removes_unnamed_blobs_only_from_a_folder_proven_to_be_the_databases(tmp_path):
    mine, orphan = f"{1:064x}", f"{2:064x}"
    store = BlobStore(tmp_path / "blobs")
    store.recover((), tmp_path / "gateway.db")  # a new folder is claimed at once
    assert (store.root / blobs.OWNER_FILE).read_text().strip() == "../gateway.db"
    _store_blob(store, mine)
    _store_blob(store, orphan)
    assert store.recover({mine}, tmp_path / "gateway.db") == 1
    assert store.exists(mine) and not store.exists(orphan)
    with pytest.raises(blobs.ForeignFolder, match="belongs to the database"):
        store.recover({mine}, tmp_path / "other.db")
    assert store.exists(mine)


def test_a_folder_from_before_the_claim_is_adopted_without_deleting_anything(tmp_path):
    mine, orphan = f"{1:064x}", f"{2:064x}"
    store = BlobStore(tmp_path / "blobs")
    store.recover(())
    _store_blob(store, mine)
    _store_blob(store, orphan)
    with pytest.raises(blobs.ForeignFolder, match="does not name"):
        store.recover((), tmp_path / "other.db")  # names none of its blobs: not its folder
    assert store.recover({mine}, tmp_path / "gateway.db") == 0  # adopted: nothing removed yet
    assert store.exists(orphan)
    assert store.recover({mine}, tmp_path / "gateway.db") == 1  # proven now
    assert not store.exists(orphan)


def test_a_new_folder_is_not_claimed_by_a_database_whose_content_is_elsewhere(tmp_path):
    mine = f"{1:064x}"
    store = BlobStore(tmp_path / "blobs-new")
    with pytest.raises(blobs.ForeignFolder, match=(
            r"names 1 stored contents and the blob folder .* holds none and names no database:"
            r" the database's content is elsewhere; set \[storage\] blobs to the folder")):
        store.recover({mine}, tmp_path / "gateway.db")
    assert not (store.root / blobs.OWNER_FILE).exists()
    (store.root / blobs.OWNER_FILE).write_text("../gateway.db\n")  # the content is lost: serve
    assert store.recover({mine}, tmp_path / "gateway.db") == 0


def _commit(store: BlobStore, content: bytes) -> str:
    with store.upload(len(content)) as upload:
        upload.write(content)
        upload.finish()
        store.commit(upload)
        assert upload.placed
    return upload.hasher.hexdigest()


def test_storing_content_already_stored_does_what_storing_new_content_does(tmp_path):
    # Whether the bytes were there before (another agency's, say) must change nothing a
    # publisher could observe: the upload is moved into place and counts as just hashed.
    store = BlobStore(tmp_path / "blobs")
    store.recover(())
    digest = _commit(store, b"patient records")
    before = os.stat(store.path(digest))
    assert _commit(store, b"patient records") == digest
    with store.open(digest) as handle:
        assert os.fstat(handle.fileno()).st_ino != before.st_ino  # the new upload's file
        assert store.unchanged_since_hashed(digest, handle)
        assert handle.read() == b"patient records"
    assert list(store.tmp.iterdir()) == []
