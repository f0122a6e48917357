"""Opaque, tamper-evident page tokens, page sizes (AIP-158), and pages filled by size.

Every List RPC is built one way: the domain reads models, owns the filters and visibility, and
answers a `Page` made by `page`; the servicer renders its items to protos.

A token carries the position after the last item returned, encrypted and authenticated
(AES-256-GCM) with a per-process key, with the list request's filters as associated data. A
token that was altered, comes from another gateway, or is reused with other filters is refused
with INVALID_ARGUMENT; and a token reveals nothing, not even the position (a global sequence
number would tell how many hidden datasets lie between two visible ones). After a restart a
listing starts again from its first page.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from gateway.config import LimitsConfig
from govshare import errors, signing

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
REPLY_RESERVE = 1024
"""Bytes of a list reply kept for what is not an item: its next_page_token and framing."""
ITEM_FRAMING = 6
"""Bytes a repeated message field adds around each item: its tag and length (up to 5)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, as the domain answers it: the items (models) and the token of
    the next page ("" at the end); the servicer renders the items."""

    items: list[T]
    next_page_token: str = ""


class Sized(Protocol):
    @property
    def reply_bytes(self) -> int:
        """At most the bytes the item takes rendered in a list reply."""


S = TypeVar("S", bound=Sized)


def page_size(value: int, default: int = DEFAULT_PAGE_SIZE) -> int:
    """The effective page size: default for 0, capped at MAX_PAGE_SIZE; negative is refused."""
    if value < 0:
        raise errors.InvalidArgument("page_size must not be negative", field="page_size")
    return min(value or default, MAX_PAGE_SIZE)


def fill(items: Iterable[S], size: int, budget: int) -> tuple[list[S], S | None]:
    """At most `size` of `items`, stopped before their `reply_bytes` pass `budget` (the first
    item always goes). Returns the page and, when items remain, its last item (the position to
    continue after), else None."""
    found: list[S] = []
    used = 0
    for item in items:
        if len(found) == size:
            return found, found[-1]
        used += item.reply_bytes + ITEM_FRAMING
        if found and used > budget:
            return found, found[-1]
        found.append(item)
    return found, None


def page(tokens: PageTokens, limits: LimitsConfig, request: Any, items: Iterable[S], size: int,
         position: Callable[[S], Any]) -> Page[S]:
    """A page of `items` (read `size` + 1 at most, the one more telling whether a next page
    exists) that fits the gateway's message limit (`fill`), with the token continuing after the
    `position` of its last item."""
    budget = limits.max_message_bytes - REPLY_RESERVE
    found, last = fill(items, size, budget)
    token = tokens.encode(position(last), request) if last is not None else ""
    return Page(found, token)


class PageTokens:
    """Makes and checks page tokens."""

    def __init__(self, secret: bytes | None = None):
        self._box = signing.SecretBox(secret)

    def encode(self, position: Any, request: Any) -> str:
        """A token for the page after `position` of the listing `request` describes."""
        body = json.dumps(position, separators=(",", ":")).encode()
        sealed = self._box.seal(body, _filters(request))
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def decode(self, token: str, request: Any) -> Any:
        """The position in `token`, or None for an empty token."""
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            return json.loads(self._box.open(raw, _filters(request)))
        except ValueError:  # not base64, not sealed here for these filters, or not JSON
            raise errors.InvalidArgument(
                "page_token is not valid for this request: pass the next_page_token of the"
                " previous response with the same filters, or none to start over",
                reason="INVALID_PAGE_TOKEN",
                field="page_token",
            ) from None


def _filters(request: Any) -> bytes:
    """The request's identity as a listing: everything but its page size and token."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("page_token")
    copy.ClearField("page_size")
    return copy.DESCRIPTOR.full_name.encode() + b"\0" + copy.SerializeToString(deterministic=True)
