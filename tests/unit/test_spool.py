"""The spool: chunks written and hashed on a thread of its own, failures raised to the caller."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from govshare import spool as spool_module
from govshare.signing import StreamHasher
from govshare.spool import Spool

BOTH = pytest.mark.parametrize("expected", [None, 1], ids=["threads", "inline"])
"""Content of unknown or large size goes through the threads, small content inline."""


@BOTH
def test_every_chunk_is_written_and_hashed_in_order(tmp_path: Path, monkeypatch,
                                                    expected: int | None) -> None:
    monkeypatch.setattr(spool_module, "RECYCLE_EVERY", 3000)  # drop cached pages along the way
    chunks = [os.urandom(1000 + n) for n in range(40)]
    target = tmp_path / "out"
    with Spool(target.open("wb"), expected=expected) as spool:
        for chunk in chunks:
            spool.write(chunk)
        assert spool.size == sum(map(len, chunks))
        hasher = spool.finish()
    content = b"".join(chunks)
    assert target.read_bytes() == content
    assert hasher.digest() == hashlib.sha256(content).digest()
    assert hasher.size == len(content)


def test_a_resumed_hash_continues_after_its_prefix(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_bytes(b"prefix-")
    prefix = StreamHasher()
    prefix.update(b"prefix-")
    with Spool(target.open("ab"), prefix) as spool:
        spool.write(b"rest")
        assert spool.size == len(b"prefix-rest")
        assert spool.finish().digest() == hashlib.sha256(b"prefix-rest").digest()


class FullDisk:
    """A file whose writes fail as on a full disk after the first one."""

    def __init__(self) -> None:
        self.writes = 0
        self.closed = False

    def write(self, chunk: bytes) -> None:
        self.writes += 1
        if self.writes > 1:
            raise OSError(28, "No space left on device")

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        raise AssertionError("a failed spool must not sync")

    def close(self) -> None:
        self.closed = True


@BOTH
def test_a_failed_write_is_raised_to_the_caller_and_nothing_blocks(expected: int | None) -> None:
    file = FullDisk()
    spool = Spool(file, expected=expected)  # type: ignore[arg-type]
    with pytest.raises(OSError, match="No space left"):
        for _ in range(100):  # more than the queue holds: the caller never blocks for good
            spool.write(b"x" * 10)
        spool.finish()
    spool.close()
    assert file.closed and file.writes == 2


def test_only_small_expected_content_is_spooled_inline(tmp_path: Path) -> None:
    sizes = {"small": spool_module.INLINE_UP_TO, "large": spool_module.INLINE_UP_TO + 1}
    for label, expected in sizes.items():
        with Spool((tmp_path / label).open("wb"), expected=expected):
            threads = {thread.name for thread in threading.enumerate()}
            assert ("spool-hash" in threads) == (label == "large")


@BOTH
def test_close_writes_what_was_handed_over_and_closes_the_file(tmp_path: Path,
                                                               expected: int | None) -> None:
    target = tmp_path / "out"
    spool = Spool(target.open("wb"), expected=expected)
    for chunk in (b"abc", b"def"):
        spool.write(chunk)
    spool.close()
    spool.close()
    assert spool.file.closed
    assert target.read_bytes() == b"abcdef"


def test_systems_without_fadvise_still_spool(tmp_path: Path, monkeypatch) -> None:
    # macOS and Windows have no posix_fadvise: the SDK's fetch must work there all the same.
    monkeypatch.delattr(os, "posix_fadvise")
    monkeypatch.setattr(spool_module, "RECYCLE_EVERY", 1000)
    target = tmp_path / "out"
    with Spool(target.open("wb")) as spool:
        for _ in range(5):
            spool.write(b"y" * 700)
        spool.finish()
    assert target.read_bytes() == b"y" * 3500


@pytest.mark.parametrize("sizes", [[1], [4095, 1, 4096, 10_000], [8192] * 5, [3000] * 17])
def test_a_direct_file_holds_every_byte_whatever_the_chunks(tmp_path: Path, monkeypatch,
                                                            sizes) -> None:
    monkeypatch.setattr(spool_module, "DIRECT_BUFFER", 8192)  # fills and wraps many times
    target = tmp_path / "direct"
    file = spool_module.open_direct(os.open(target, os.O_RDWR | os.O_CREAT, 0o600))
    assert isinstance(file, spool_module.DirectFile)  # this filesystem takes O_DIRECT
    written = b""
    for n, size in enumerate(sizes):
        chunk = os.urandom(size)
        file.write(chunk)
        written += chunk
        if n % 2:
            file.flush()  # the padded last block is rewritten by the next write
            assert target.read_bytes() == written
    file.close()
    assert target.read_bytes() == written


def test_content_that_fits_in_a_chunk_gets_a_plain_file(tmp_path: Path) -> None:
    target = tmp_path / "small"
    file = spool_module.open_direct(os.open(target, os.O_RDWR | os.O_CREAT, 0o600),
                                    expected=spool_module.INLINE_UP_TO)
    assert not isinstance(file, spool_module.DirectFile)
    file.close()


def test_without_o_direct_a_plain_file_is_used(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delattr(os, "O_DIRECT")  # as on macOS and Windows
    target = tmp_path / "plain"
    file = spool_module.open_direct(os.open(target, os.O_RDWR | os.O_CREAT, 0o600))
    assert not isinstance(file, spool_module.DirectFile)
    with Spool(file) as spool:
        spool.write(b"z" * 5000)
        spool.finish()
    assert target.read_bytes() == b"z" * 5000


@pytest.mark.parametrize("already", [4096, 5000, 100])
def test_a_direct_file_carries_on_after_what_a_file_held(tmp_path: Path, already: int) -> None:
    # A resumed fetch: the part file holds `already` bytes, the rest is appended to them.
    target = tmp_path / "part"
    before = os.urandom(already)
    target.write_bytes(before)
    file = spool_module.open_direct(os.open(target, os.O_RDWR), already)
    assert isinstance(file, spool_module.DirectFile)
    after = os.urandom(9000)
    with Spool(file) as spool:
        spool.write(after)
        spool.finish()
    assert target.read_bytes() == before + after
