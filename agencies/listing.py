"""The items of a paged List RPC as the SDK hands them out: an iterator that fetches pages as
the caller goes, and says which members of the national network the listing may be missing."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["Listing"]

T = TypeVar("T")


class Listing(Iterator[T]):
    """The items of a paged List RPC, fetched page by page as the caller iterates.

    `stale_members`: the members of the national network that the gateway had not reached
    within three replication intervals when it answered, so the listing may miss their items
    or show them out of date (their last copy is still listed: partial results, marked as
    such). It collects the replies' `stale_members` in the order first named, reading the
    first page if no item was read yet; it is empty on a gateway outside a network, when every
    member was reached, and for listings whose replies carry none (versions, access requests,
    grants, audit events)."""

    def __init__(self, call: Callable[[], Any], request: Any, field: str):
        self._call = call
        self._request = request
        self._field = field
        self._items: collections.deque[T] = collections.deque()
        self._stale: dict[str, None] = {}
        self._read = False
        self._done = False

    def __next__(self) -> T:
        while not self._items:
            if self._done:
                raise StopIteration
            self._read_page()
        return self._items.popleft()

    @property
    def stale_members(self) -> tuple[str, ...]:
        if not self._read:
            self._read_page()
        return tuple(self._stale)

    def _read_page(self) -> None:
        response = self._call()
        self._read = True
        self._items.extend(getattr(response, self._field))
        self._stale.update(dict.fromkeys(getattr(response, "stale_members", ())))
        self._request.page_token = response.next_page_token
        self._done = not response.next_page_token
