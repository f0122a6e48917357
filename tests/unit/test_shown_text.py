"""gateway.text.shown, json_text and LogFormatter: network text shown as text."""

from __future__ import annotations

import json
import logging
import re
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.text import LogFormatter, json_text, shown

HIDDEN = [
    ("\x1b[31m", "\\x1b[31m"),  # ESC: a colour, a cursor move, a title change
    ("a\nb", "a\\nb"),
    ("a\rb", "a\\rb"),
    ("a\tb", "a\\tb"),
    ("\x00\x07\x08\x7f", "\\x00\\x07\\x08\\x7f"),
    ("\x9b31m", "\\x9b31m"),  # C1 CSI, an escape sequence on its own in 8-bit terminals
    ("\x85", "\\x85"),  # C1 next line
    ("evil\u202egpj.exe", "evil\\u202egpj.exe"),  # right-to-left override
    ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
    ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),  # bidi isolates
    ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # direction marks
    ("a\u200bb\ufeff", "a\\u200bb\\ufeff"),  # zero-width space, byte order mark
    ("a\u2028b\u2029", "a\\u2028b\\u2029"),  # line and paragraph separators
    ("\U000e0041", "\\U000e0041"),  # a tag character
    ("\ud800", "\\ud800"),  # a lone surrogate
    ("\\n", "\\\\n"),  # a backslash and an n, typed: not a line break
    ("C:\\data", "C:\\\\data"),
]


@pytest.mark.parametrize(("text", "expected"), HIDDEN)
def test_hidden_characters_are_shown_as_their_escapes(text: str, expected: str) -> None:
    assert shown(text) == expected


DEFAULT_IGNORABLE = Path(__file__).parents[1] / "vectors" / "data" / "default-ignorable.txt"
"""Unicode's Default_Ignorable_Code_Point (tests/vectors/data/PROVENANCE.md): characters drawn
as nothing."""


def _default_ignorable() -> list[str]:
    found = []
    for line in DEFAULT_IGNORABLE.read_text(encoding="utf-8").splitlines():
        if line := line.split("#", 1)[0].strip():
            first, _, last = line.split(";")[0].strip().partition("..")
            found += map(chr, range(int(first, 16), int(last or first, 16) + 1))
    return found


IGNORABLE = _default_ignorable()
IGNORABLE_SET = frozenset(IGNORABLE)


def test_every_default_ignorable_character_is_shown_escaped() -> None:
    assert len(IGNORABLE_SET) == 4174  # the file's "Total code points"
    for char in IGNORABLE:
        assert _unescaped(shown(char)) == char != shown(char)
        assert json.loads(json_text(char)) == char != json_text(char)[1:-1]


@pytest.mark.parametrize(("text", "expected"), [
    ("ad\u034fmin", "ad\\u034fmin"),  # combining grapheme joiner: a name that reads "admin"
    ("gd\u17b4\u17b5health", "gd\\u17b4\\u17b5health"),  # Khmer inherent vowels
    ("\u115f\u1160\u3164\uffa0", "\\u115f\\u1160\\u3164\\uffa0"),  # Hangul fillers: a blank name
    ("\u2764\ufe0f \u845b\U000e0100", "\u2764\\ufe0f \u845b\\U000e0100"),  # variation selectors
], ids=["grapheme-joiner", "khmer-vowels", "hangul-fillers", "variation-selectors"])
def test_default_ignorable_marks_and_letters_are_shown_escaped(text: str, expected: str) -> None:
    assert shown(text) == expected
    assert json.loads(json_text(text)) == text
    assert re.fullmatch(r'"[\u2764\u845b \\a-z0-9]*"', json_text(text)) is not None


@pytest.mark.parametrize("text", [
    "", "Guangdong Provincial Health Commission", "广东省卫生健康委员会", "医院 床位　统计",
    "[link=https://evil]x[/link][bold green] :smile:", "Ünïcödé ﬁ 🏥", "100%", "a\xa0b",
])
def test_readable_text_is_unchanged(text: str) -> None:
    assert shown(text) == text


@given(st.text())
def test_shown_hides_nothing_and_reads_back_as_the_text(text: str) -> None:
    result = shown(text)
    assert not _hidden_in(result)
    assert _unescaped(result) == text


def _hidden_in(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Cn", "Zl", "Zp")
            or c in IGNORABLE_SET]


def _unescaped(result: str) -> str:
    """Read `shown`'s output back (its escapes are Python's)."""
    out, index = [], 0
    while index < len(result):
        char = result[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        kind = result[index + 1]
        width = {"x": 2, "u": 4, "U": 8}.get(kind)
        if width is None:
            out.append({"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}[kind])
            index += 2
        else:
            out.append(chr(int(result[index + 2:index + 2 + width], 16)))
            index += 2 + width
    return "".join(out)


@given(st.recursive(st.text() | st.integers() | st.none(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_json_text_is_the_same_value_with_nothing_hidden(value: object) -> None:
    text = json_text(value)
    assert json.loads(text) == value
    assert not _hidden_in(text)


def test_json_text_escapes_what_json_dumps_lets_through() -> None:
    value = {"name": "广东 \u202eevil\x7f\x9b\u2028", "tag": "\U000e0041"}
    assert json.dumps(value, ensure_ascii=False).count("\u202e") == 1  # why json_text exists
    assert json_text(value) == ('{"name": "广东 \\u202eevil\\u007f\\u009b\\u2028",'
                                ' "tag": "\\udb40\\udc41"}')


def _record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("govshare.rpc", logging.INFO, __file__, 1, message, args, exc_info)


def test_a_log_message_quoting_network_text_stays_one_line() -> None:
    hostile = "x\n2026-01-01 00:00:00,000 INFO govshare.rpc rpc method=forged status=OK\x1b[2K"
    line = LogFormatter("%(levelname)s %(message)s").format(_record("refused %s", hostile))
    assert line == ("INFO refused x\\n2026-01-01 00:00:00,000 INFO govshare.rpc rpc"
                    " method=forged status=OK\\x1b[2K")


def test_a_traceback_quoting_network_text_is_indented_and_escaped() -> None:
    try:
        raise ValueError("bad name agencies/x\nINFO forged line\x1b[31m")
    except ValueError:
        record = _record("unexpected error", exc_info=sys.exc_info())
    lines = LogFormatter("%(levelname)s %(message)s").format(record).split("\n")
    assert lines[0] == "INFO unexpected error"
    assert all(line.startswith("    ") for line in lines[1:])
    assert lines[-2:] == ["    ValueError: bad name agencies/x", "    INFO forged line\\x1b[31m"]
