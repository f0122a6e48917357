"""The one rule for free text in requests: titles, purposes, legal bases and reasons.

Required text must hold more than white space (a denial "for    " gives no reason), no text may
be longer than its field allows, and none may hold NUL characters, which SQLite keeps but every
terminal and log cuts short.
"""

from __future__ import annotations

from gateway import errors

MAX_REASON = 500
"""Longest reason for a revocation, a withdrawal, a suspension, a reinstatement or a
signing-certificate replacement."""


def check_text(value: str, field: str, longest: int, *, required: bool = False) -> None:
    """Refuse `value` with INVALID_ARGUMENT naming `field` unless it fits the rule above."""
    if required and not value.strip():
        raise errors.InvalidArgument(
            f"{field} is required (1 to {longest} characters, not only spaces)", field=field)
    if len(value) > longest:
        raise errors.InvalidArgument(
            f"{field} is {len(value)} characters, too long: shorten it to at most {longest}",
            field=field, limit=longest)
    if "\0" in value:
        raise errors.InvalidArgument(f"{field} must not contain NUL characters", field=field)


def check_reason(reason: str) -> None:
    """A reason for a revocation, a withdrawal, a suspension, a reinstatement or a
    signing-certificate replacement: required."""
    check_text(reason, "reason", MAX_REASON, required=True)
