"""Opaque, tamper-evident page tokens and page sizes (AIP-158).

A token carries the position after the last item returned, bound by an HMAC to the gateway and
to the list request's filters, so a token that was altered, comes from another gateway, or is
reused with other filters is refused with INVALID_ARGUMENT. Tokens are signed with a per-process
secret: after a restart a listing starts again from its first page.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from typing import Any

from gateway import errors, signing

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(value: int, default: int = DEFAULT_PAGE_SIZE) -> int:
    """The effective page size: default for 0, capped at MAX_PAGE_SIZE; negative is refused."""
    if value < 0:
        raise errors.InvalidArgument("page_size must not be negative", field="page_size")
    return min(value or default, MAX_PAGE_SIZE)


class PageTokens:
    """Makes and checks page tokens."""

    def __init__(self, secret: bytes | None = None):
        self._secret = secret or secrets.token_bytes(32)

    def encode(self, position: Any, request: Any) -> str:
        """A token for the page after `position` of the listing `request` describes."""
        body = json.dumps(position, separators=(",", ":")).encode()
        mac = self._mac(body, request)
        return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")

    def decode(self, token: str, request: Any) -> Any:
        """The position in `token`, or None for an empty token."""
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, body = raw[:32], raw[32:]
            if len(mac) == 32 and hmac.compare_digest(mac, self._mac(body, request)):
                return json.loads(body)
        except (ValueError, json.JSONDecodeError):
            pass
        raise errors.InvalidArgument(
            "page_token is not valid for this request: pass the next_page_token of the previous"
            " response with the same filters, or none to start over",
            reason="INVALID_PAGE_TOKEN",
            field="page_token",
        )

    def _mac(self, body: bytes, request: Any) -> bytes:
        return signing.hmac_sha256(self._secret, _filters(request) + b"\0" + body)


def _filters(request: Any) -> bytes:
    """The request's identity as a listing: everything but its page size and token."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("page_token")
    copy.ClearField("page_size")
    return copy.DESCRIPTOR.full_name.encode() + b"\0" + copy.SerializeToString(deterministic=True)
