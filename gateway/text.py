"""Free text in and out: the one rule for text in requests (titles, purposes, legal bases,
reasons), and how text from the network is shown to people.

Required text must hold more than white space (a denial "for    " gives no reason), no text may
be longer than its field allows, and none may hold NUL characters, which SQLite keeps but every
terminal and log cuts short.

Any other character is accepted, so what comes from the network may hold terminal escape
sequences, line breaks, bidi overrides or characters drawn as nothing that would make a terminal
or a log show something else than what was sent. Every human-readable output shows such text
through `shown` (the CLI also never lets Rich read it as markup, and its tables fold long text
rather than cut it), JSON output through `json_text`, and log lines through `LogFormatter`.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from typing import Any

from govshare import errors

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

_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
"""The Unicode property Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 14.0,
as unicodedata has no such property) as ranges of code points, first and last: characters drawn
as nothing. Most are format characters, but the combining grapheme joiner, the Khmer inherent
vowels, the Hangul fillers and the variation selectors are marks and letters that the categories
above let through. A variation selector is escaped after an emoji or an ideograph too: one rule
for all network text, so that what is shown never hides a character."""

_IGNORABLE = re.compile("[" + "".join(f"\\U{first:08x}-\\U{last:08x}"
                                      for first, last in _IGNORABLE_RANGES) + "]")

_SHORT = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _plain(text: str) -> bool:
    """Whether `text` holds nothing to escape but perhaps backslashes (at C speed)."""
    return text.isprintable() and _IGNORABLE.search(text) is None


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _HIDDEN or _IGNORABLE.match(char) is not None


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
    if "\\" not in text and _plain(text):  # the common case
        return text
    return "".join(map(_escaped, text))


def json_text(value: Any) -> str:
    """`value` as one line of JSON (keys sorted, non-ASCII text as it is) in which every
    character `shown` would escape is a `\\u` escape: the same JSON value, safe on a terminal."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if _plain(text):
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
