"""Opaque, tamper-evident page tokens, page sizes (AIP-158), and pages filled by size.

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
from typing import Any, TypeVar

from google.protobuf.message import Message

from gateway.config import LimitsConfig
from govshare import errors, signing

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
REPLY_RESERVE = 1024
"""Bytes of a list reply kept for what is not an item: its next_page_token and framing."""
ITEM_FRAMING = 6
"""Bytes a repeated message field adds around each item: its tag and length (up to 5)."""

Row = TypeVar("Row")


def page_size(value: int, default: int = DEFAULT_PAGE_SIZE) -> int:
    """The effective page size: default for 0, capped at MAX_PAGE_SIZE; negative is refused."""
    if value < 0:
        raise errors.InvalidArgument("page_size must not be negative", field="page_size")
    return min(value or default, MAX_PAGE_SIZE)


def fill(rows: Iterable[Row], size: int, budget: int,
         render: Callable[[Row], Message]) -> tuple[list[Message], Row | None]:
    """A page of rendered `rows`: at most `size` items, and stopped before the items' encoded
    size passes `budget` bytes (the first item always goes). Returns the items and, when rows
    remain, the last row on the page (the position to continue after), else None."""
    page: list[Message] = []
    used = 0
    last: Row | None = None
    for row in rows:
        if len(page) == size:
            return page, last
        item = render(row)
        used += item.ByteSize() + ITEM_FRAMING
        if page and used > budget:
            return page, last
        page.append(item)
        last = row
    return page, None


def page(tokens: PageTokens, limits: LimitsConfig, request: Any, rows: Iterable[Row], size: int,
         render: Callable[[Row], Message], position: str) -> tuple[list[Message], str]:
    """A page of a list reply: `rows` rendered by `fill` within the gateway's message limit,
    and the token continuing after the last row's `position` column ("" at the end)."""
    budget = limits.max_message_bytes - REPLY_RESERVE
    items, last = fill(rows, size, budget, render)
    token = tokens.encode(last[position], request) if last is not None else ""
    return items, token


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
