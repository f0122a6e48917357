"""Resource ids: UUIDv7, unique, in creation order, never repeated by a forked child."""

import os
import time
import uuid

from govshare.ids import new_id


def test_ids_are_uuid7_hex() -> None:
    parsed = uuid.UUID(new_id())
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert len(parsed.hex) == 32


def test_ids_are_unique_and_sort_by_creation_millisecond() -> None:
    first = [new_id() for _ in range(5000)]  # more than one pool of random bytes
    time.sleep(0.002)
    later = new_id()
    assert len(set(first)) == len(first)
    assert later > max(first)
    assert first == sorted(first, key=lambda name: name[:12])  # time prefix never goes back


def test_a_forked_child_does_not_repeat_the_parents_random_bytes() -> None:
    new_id()  # the pool holds bytes the child would inherit
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(writer, new_id().encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    child_id = os.read(reader, 64).decode()
    os.close(reader)
    assert child_id[13:] != new_id()[13:]  # the random parts differ
