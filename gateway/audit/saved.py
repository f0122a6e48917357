"""The file outside the database that holds the log's latest signed checkpoint
([audit] checkpoint_file), saved before anyone sees the checkpoint.

The committer saves once per batch, so a save is one small write in place and one fdatasync:
against no file, 0.97x the appends/s of 64 writers and 0.77x of one, where a file replaced by
rename and fsynced with its folder (five times the time per save) gave 0.81x and 0.38x.

The file holds two slots of SLOT bytes, each a save number (8 bytes, big-endian) and a signed
note, padded with NUL bytes, and a save overwrites the older slot: a crash in the middle of a
write can only tear that slot, while the other still holds the checkpoint before it (which the
database extends, as it commits before it saves). Each start writes the file anew, atomically
(certs.files.replace_file), with the latest checkpoint in the first slot.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from certs.files import replace_file

SLOT = 4096
"""Bytes per slot: one page, far more than a checkpoint signed by one key needs."""
_NUMBER = struct.Struct(">Q")


class CheckpointFile:
    """The two-slot checkpoint file; `reset` opens it for `save`, `close` closes it."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._saves = 0
        """Saves since the file was written anew: the next goes to slot _saves % 2."""

    def read(self) -> list[bytes]:
        """The signed notes the slots hold, the latest saved first (`slots`).
        FileNotFoundError when there is no file."""
        return slots(self.path.read_bytes())

    def reset(self, signed: bytes) -> None:
        """Write the file anew with `signed` as its only checkpoint, and open it for saves."""
        self.close()
        replace_file(self.path, _slot(0, signed) + bytes(SLOT))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        self._saves = 1

    def save(self, signed: bytes) -> None:
        """Overwrite the older slot with `signed`, durably (OSError when it cannot be)."""
        assert self._fd is not None, "reset() opens the file"
        os.pwrite(self._fd, _slot(self._saves, signed), self._saves % 2 * SLOT)
        os.fdatasync(self._fd)
        self._saves += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_checkpoint_file(data: bytes) -> bool:
    """Whether `data` has the shape of a checkpoint file: whole slots, with the NUL bytes of
    their save numbers and padding, which a signed note never holds."""
    return bool(data) and len(data) % SLOT == 0 and b"\0" in data


def slots(data: bytes) -> list[bytes]:
    """The signed notes the slots of a checkpoint file's `data` hold, the latest saved first
    (a torn slot reads as what it holds: whoever reads verifies)."""
    whole = [data[start:start + SLOT] for start in range(0, len(data), SLOT)]
    found = sorted(((_NUMBER.unpack_from(slot)[0], slot[_NUMBER.size:].rstrip(b"\0"))
                    for slot in whole if len(slot) == SLOT), reverse=True)
    return [signed for _, signed in found if signed]


def _slot(number: int, signed: bytes) -> bytes:
    data = _NUMBER.pack(number) + signed
    if len(data) > SLOT or b"\0" in signed:
        raise ValueError(f"a signed checkpoint of {len(signed)} bytes does not fit a slot")
    return data.ljust(SLOT, b"\0")
