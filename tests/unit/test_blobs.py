"""The blob store remembers a bounded number of hashed-file stamps."""

import os

from gateway import blobs
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
