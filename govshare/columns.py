"""Column digests of tabular content (CSV, JSON Lines), and projections onto some of its fields.

A publisher signs, per schema field, the SHA-256 of that field's values: for each data row in
order, the value's canonical bytes prefixed by their length as 8-byte big-endian. Content is
UTF-8 (a leading byte order mark, as spreadsheets write, is not part of it). Canonical value:
CSV (RFC 4180 as Python's csv module reads it, the header row naming the fields, every schema
field among them; lines that are empty are not rows): the cell's text in UTF-8, "" for a cell
a short row lacks; a row with more cells than the header is refused. JSON Lines (one object per
line, empty lines skipped): the value of the field's key (null when missing) written as JSON
with keys sorted, no spaces, text unescaped, and numbers exactly as their decimal value reads
(12345678901234567.89 stays so, never rounded through a binary float; NaN and Infinity are
refused), in UTF-8.

A projection re-encodes the content with only some fields, in the order given: CSV as the header
and rows written by csv.writer with RFC 4180 line ends (CRLF, so a cell holding a lone CR is
quoted), JSON Lines as one object per row holding every projected field as its canonical value
(null for a missing key). Reading a projection back
gives the same values, so its column digests are the publisher's: the gateway checks them while
it projects, the SDK on the file it received. The SDK, the gateway and the tests use this one
definition. Everything streams: memory is bounded by one row (a CSV cell by csv.field_size_limit,
a JSON line by MAX_JSON_LINE).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway.v1 import catalog_pb2

TABULAR = (catalog_pb2.MEDIA_TYPE_CSV, catalog_pb2.MEDIA_TYPE_JSON_LINES)
"""The media types that carry column digests."""

MAX_JSON_LINE = 16 * 1024 * 1024
"""The longest JSON Lines row read, in characters."""

BLOCK = 64 * 1024
"""Projected output is yielded in blocks of about this many bytes."""

GROWTH = 8
"""A projected value takes at most this many times the bytes it took in the content (a CSV cell
gains quotes and doubled quotes; a JSON number such as 1e15 is written out in full)."""


class ColumnError(ValueError):
    """Content that is not what its media type says: the message says where and why."""


@dataclass(frozen=True)
class Columns:
    """What one pass over tabular content found."""

    digests: dict[str, bytes]
    row_count: int


def is_tabular(media_type: int) -> bool:
    return media_type in TABULAR


def signed_columns(manifest: catalog_pb2.Manifest, fields: Sequence[str]) -> Columns:
    """The publisher-signed digests of `fields` and the row count, from a manifest."""
    digests = {field.name: field.values_sha256 for field in manifest.schema}
    return Columns({name: digests[name] for name in fields}, manifest.row_count)


def scan(chunks: Iterable[bytes], media_type: int, fields: Sequence[str], *,
         exact: bool = False) -> Columns:
    """The column digests of `fields` and the row count of content given as chunks.
    `exact`: the content must hold exactly `fields` (a projection's check that nothing else
    came with it)."""
    digests = _Digests(fields)
    for row in _rows(chunks, media_type, fields, exact):
        digests.add(row)
    return digests.result()


class Projection:
    """Iterate for the projected bytes of content given as chunks; once done, `columns` holds
    the digests and row count of what was projected."""

    def __init__(self, chunks: Iterable[bytes], media_type: int, fields: Sequence[str]):
        self._rows = _rows(chunks, media_type, fields, exact=False)
        self._writer = _CsvOut(fields) if media_type == catalog_pb2.MEDIA_TYPE_CSV \
            else _JsonOut(fields)
        self._digests = _Digests(fields)
        self.columns: Columns | None = None

    def __iter__(self) -> Iterator[bytes]:
        out = self._writer
        for row in self._rows:
            self._digests.add(row)
            out.write(row)
            if out.size() >= BLOCK:
                yield out.take()
        if block := out.take():
            yield block
        self.columns = self._digests.result()


def projected_bound(content_size: int, row_count: int, fields: Sequence[str]) -> int:
    """The most bytes a projection of `fields` can take: its values at most GROWTH times their
    bytes in the content, each row (and the header) written with every field empty or null."""
    per_row = 2 + sum(len(_dumps(name).encode()) + 6 for name in fields)
    return GROWTH * content_size + (row_count + 1) * per_row


class _Digests:
    """Column digests, hashed a batch of rows at a time, column by column: per value, a hash
    update each for the prefix and the bytes made hashing most of the cost of a scan."""

    BATCH = 1024

    def __init__(self, fields: Sequence[str]):
        self._hashes = [hashlib.sha256() for _ in fields]
        self._fields = fields
        self._rows = 0
        self._batch: list[Sequence[str]] = []

    def add(self, row: Sequence[str]) -> None:
        self._batch.append(row)
        if len(self._batch) == self.BATCH:
            self._hash_batch()

    def result(self) -> Columns:
        self._hash_batch()
        return Columns({name: h.digest() for name, h in zip(self._fields, self._hashes,
                                                              strict=True)}, self._rows)

    def _hash_batch(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:  # no rows at all, or a multiple of BATCH already hashed
            return
        for hasher, values in zip(self._hashes, zip(*batch, strict=True), strict=True):
            try:
                data = [value.encode() for value in values]
            except UnicodeEncodeError:  # a lone surrogate escaped in JSON ("\ud800")
                row = self._rows + next(n for n, v in enumerate(values, 1) if not _encodes(v))
                raise ColumnError(f"row {row} holds text that is not valid Unicode") from None
            parts: list[bytes] = [b""] * (2 * len(data))
            parts[0::2] = [len(item).to_bytes(8, "big") for item in data]
            parts[1::2] = data
            hasher.update(b"".join(parts))
        self._rows += len(batch)


def _encodes(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _rows(chunks: Iterable[bytes], media_type: int, fields: Sequence[str],
          exact: bool) -> Iterator[Sequence[str]]:
    """The canonical text values of `fields`, row by row."""
    if media_type == catalog_pb2.MEDIA_TYPE_CSV:
        return _csv_rows(_text(chunks, ""), fields, exact)
    if media_type == catalog_pb2.MEDIA_TYPE_JSON_LINES:
        return _json_rows(_text(chunks, "\n"), fields, exact)
    raise ColumnError("only CSV and JSON Lines content has columns")


def _text(chunks: Iterable[bytes], newline: str) -> io.TextIOWrapper:
    """The chunks as strict UTF-8 text, lines ending as `newline` says (csv wants "")."""
    return io.TextIOWrapper(io.BufferedReader(_ChunkReader(chunks), BLOCK), encoding="utf-8-sig",
                            errors="strict", newline=newline)


class _ChunkReader(io.RawIOBase):
    """A readable raw stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _csv_rows(text: io.TextIOWrapper, fields: Sequence[str],
              exact: bool) -> Iterator[Sequence[str]]:
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, [])
        where = _header_positions(header, fields, exact)
        pick = operator.itemgetter(*where) if len(where) > 1 else (
            lambda cells: (cells[where[0]],))
        width = len(header)
        for cells in reader:
            if len(cells) != width:
                if not cells:
                    continue
                if len(cells) > width:
                    raise ColumnError(f"line {reader.line_num} has {len(cells)} cells, but the"
                                      f" header names {width} fields")
                cells += [""] * (width - len(cells))
            yield pick(cells)
    except csv.Error as exc:
        raise ColumnError(f"line {reader.line_num} is not valid CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise _not_utf8(exc) from None


def _not_utf8(exc: UnicodeDecodeError) -> ColumnError:
    return ColumnError(f"the content is not valid UTF-8 ({exc.reason}): publish text as UTF-8")


def _header_positions(header: list[str], fields: Sequence[str], exact: bool) -> list[int]:
    """Where each field is in the header; every field must be there (a schema field the header
    lacks would otherwise be signed as a column of empty cells)."""
    if len(set(header)) != len(header):
        raise ColumnError("the CSV header names a field twice")
    if exact and header != list(fields):
        raise ColumnError(f"the CSV header is {','.join(header)}, not {','.join(fields)}")
    if missing := [name for name in fields if name not in header]:
        raise ColumnError(f"the CSV header ({','.join(header)}) lacks the schema fields"
                          f" {','.join(missing)}: names must match exactly")
    positions = {name: index for index, name in enumerate(header)}
    return [positions[name] for name in fields]


def _json_rows(text: io.TextIOWrapper, fields: Sequence[str],
               exact: bool) -> Iterator[Sequence[str]]:
    number = 0
    while True:
        try:
            line = text.readline(MAX_JSON_LINE + 1)
        except UnicodeDecodeError as exc:
            raise _not_utf8(exc) from None
        if not line:
            return
        number += 1
        if len(line) > MAX_JSON_LINE:
            raise ColumnError(f"line {number} is longer than {MAX_JSON_LINE} characters")
        if line.strip():
            yield _json_values(line, number, fields, exact)


def _json_values(line: str, number: int, fields: Sequence[str], exact: bool) -> list[str]:
    try:
        value = json.loads(line, parse_float=Decimal, parse_constant=_no_constant)
    except ValueError as exc:
        raise ColumnError(f"line {number} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ColumnError(f"line {number} is not a JSON object")
    if exact and set(value) != set(fields):
        raise ColumnError(f"line {number} holds the fields {','.join(sorted(value))}, not"
                          f" {','.join(sorted(fields))}")
    try:
        return [_canonical(value.get(name)) for name in fields]
    except RecursionError:
        raise ColumnError(f"line {number} nests values too deeply") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _canonical(value: Any) -> str:
    """A JSON value as the digests read it (decimal numbers kept exactly as parsed)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_dumps(key)}:{_canonical(value[key])}"
                              for key in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return _dumps(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class _CsvOut:
    def __init__(self, fields: Sequence[str]):
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")
        self._writer.writerow(fields)

    def write(self, row: Sequence[str]) -> None:
        self._writer.writerow(row)

    def size(self) -> int:
        return self._buffer.tell()

    def take(self) -> bytes:
        data = self._buffer.getvalue().encode()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data


class _JsonOut:
    def __init__(self, fields: Sequence[str]):
        self._keys = [_dumps(name) + ":" for name in fields]
        self._lines: list[str] = []
        self._size = 0

    def write(self, row: Sequence[str]) -> None:
        line = "{" + ",".join(key + value for key, value in zip(self._keys, row,
                                                                  strict=True)) + "}\n"
        self._lines.append(line)
        self._size += len(line)

    def size(self) -> int:
        return self._size

    def take(self) -> bytes:
        data = "".join(self._lines).encode()
        self._lines, self._size = [], 0
        return data
