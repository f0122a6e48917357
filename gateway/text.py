"""Free text in and out: the one rule for text in requests (titles, purposes, legal bases,
reasons), and how text from the network is shown to people.

Required text must hold more than white space (a denial "for    " gives no reason), no text may
be longer than its field allows, and none may hold NUL characters, which SQLite keeps but every
terminal and log cuts short.

Any other character is accepted, so what comes from the network may hold terminal escape
sequences, line breaks or bidi overrides that would make a terminal or a log show something else
than what was sent. Every human-readable output shows such text through `shown` (the CLI also
never lets Rich read it as markup), JSON output through `json_text`, and log lines through
`LogFormatter`.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from typing import Any

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


_HIDDEN = frozenset(("Cc", "Cf", "Cs", "Cn", "Zl", "Zp"))
"""Unicode categories shown escaped: control characters (C0, DEL, C1), format characters (bidi
overrides and isolates, direction marks, zero-width characters), lone surrogates, unassigned code
points, and line and paragraph separators: all move, hide or break what a terminal shows."""

_SHORT = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _HIDDEN


def _escaped(char: str) -> str:
    if char in _SHORT:
        return _SHORT[char]
    if not _hidden(char):
        return char
    point = ord(char)
    if point < 0x100:
        return f"\\x{point:02x}"
    return f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def shown(text: str) -> str:
    """`text` as a person may safely read it on a terminal or in a log: one line, every hidden
    character written as its Python escape (`\\x1b`, `\\n`, `\\u202e`) and a backslash doubled,
    so that a typed `\\n` (shown `\\\\n`) never reads as a line break. Other text, Chinese
    included, is unchanged."""
    if text.isprintable() and "\\" not in text:  # the common case, at C speed
        return text
    return "".join(map(_escaped, text))


def json_text(value: Any) -> str:
    """`value` as one line of JSON (keys sorted, non-ASCII text as it is) in which every
    character `shown` would escape is a `\\u` escape: the same JSON value, safe on a terminal."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if text.isprintable():
        return text
    return "".join(json.dumps(char)[1:-1] if _hidden(char) else char for char in text)


class LogFormatter(logging.Formatter):
    """Log records whose message is one line, however much network text it quotes, and whose
    tracebacks (which quote exception messages) follow on indented lines: no text can forge
    a record or hide part of one."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return shown(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("    " + shown(line) for line in text.split("\n"))
