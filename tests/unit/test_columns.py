"""govshare.columns: the column digest definition, streaming, projections, malformed content; and
the SDK's check of a projection it received."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agencies import errors
from agencies.exchange import _check_columns
from gateway.v1 import catalog_pb2
from govshare import columns

CSV = catalog_pb2.MEDIA_TYPE_CSV
JSONL = catalog_pb2.MEDIA_TYPE_JSON_LINES
TABLE = ('区域,beds,note\n'
         '"广州, 越秀",12,"line one\nline two"\n'
         '深圳,,\n'
         '\n'
         '佛山,7\n').encode()
"""Quoted comma, quoted newline, empty cells, a short row, an empty line (not a row)."""
LINES = ('{"id":1,"name":"王","tags":["a",{"z":1,"y":2}]}\n'
         '\n'
         '{"id":2,"extra":true}\n').encode()
"""Nested values, a missing key, a key outside the projection."""


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def test_the_digest_of_a_tiny_csv_is_as_defined():
    found = columns.scan([b'a,b\n1\n,"q"\n'], CSV, ["a", "b"])
    assert found.row_count == 2
    # a: "1" then "" (a short row); b: "" then "q", each prefixed by its 8-byte length
    assert found.digests["a"].hex() == \
        "a26fafc8c4b5b0d5c84a47a2b7b5509940a43765d7e5ecfae5b5ff804fd30e20"
    assert found.digests["b"] == hashlib.sha256(bytes(8) + bytes(7) + b"\x01q").digest()


def test_json_lines_values_are_canonical_json_and_missing_keys_null():
    found = columns.scan([LINES], JSONL, ["tags", "name"])
    tags = b'["a",{"y":2,"z":1}]'
    assert found.row_count == 2
    assert found.digests["tags"] == hashlib.sha256(
        len(tags).to_bytes(8, "big") + tags + (4).to_bytes(8, "big") + b"null").digest()
    name = "\"王\"".encode()  # the JSON text, quotes included
    assert found.digests["name"] == hashlib.sha256(
        len(name).to_bytes(8, "big") + name + (4).to_bytes(8, "big") + b"null").digest()


@pytest.mark.parametrize(("media_type", "content", "fields"), [
    (CSV, TABLE, ["区域", "note"]), (CSV, TABLE, ["beds"]),
    (JSONL, LINES, ["tags", "name"]), (JSONL, LINES, ["id"]),
])
def test_a_projection_holds_exactly_the_fields_with_the_same_digests(media_type, content,
                                                                     fields):
    whole = columns.scan([content], media_type, fields)
    projection = columns.Projection([content], media_type, fields)
    projected = b"".join(projection)
    assert projection.columns == whole
    assert columns.scan([projected], media_type, fields, exact=True) == whole
    assert len(projected) <= columns.projected_bound(len(content), whole.row_count, fields)


def test_a_csv_projection_keeps_quoting_and_schema_order():
    projected = b"".join(columns.Projection([TABLE], CSV, ["区域", "note"]))
    assert projected.decode() == ('区域,note\r\n"广州, 越秀","line one\nline two"\r\n深圳,\r\n'
                                  '佛山,\r\n')


def test_a_json_lines_projection_writes_every_field_null_when_missing():
    projected = b"".join(columns.Projection([LINES], JSONL, ["name", "id"]))
    assert [json.loads(line) for line in projected.splitlines()] == \
        [{"name": "王", "id": 1}, {"name": None, "id": 2}]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0), max_size=12),
       which=st.sampled_from([(CSV, TABLE, ["note", "区域"]), (JSONL, LINES, ["tags", "id"])]))
def test_any_chunk_boundaries_give_the_one_shot_answer(cuts, which):
    media_type, content, fields = which
    chunks = split(content, cuts)
    assert columns.scan(chunks, media_type, fields) == columns.scan([content], media_type, fields)
    assert b"".join(columns.Projection(chunks, media_type, fields)) == \
        b"".join(columns.Projection([content], media_type, fields))


@pytest.mark.parametrize(("media_type", "content", "says"), [
    (CSV, b"a,b\n1,2,3\n", "has 3 cells, but the header names 2"),
    (CSV, b'a\n"open\n', "not valid CSV"),
    (CSV, b"a,a\n1,2\n", "names a field twice"),
    (CSV, b"a\n\xff\xfe\n", "not valid UTF-8"),
    (JSONL, b'{"a":1}\n[1]\n', "line 2 is not a JSON object"),
    (JSONL, b'{"a":\n', "line 1 is not valid JSON"),
    (JSONL, b'{"a":"\xc3"}\n', "not valid UTF-8"),
    (JSONL, b'{"a":"\\ud800"}\n', "not valid Unicode"),
    (catalog_pb2.MEDIA_TYPE_OCTET_STREAM, b"x", "only CSV and JSON Lines"),
])
def test_malformed_content_is_a_clear_error(media_type, content, says):
    with pytest.raises(columns.ColumnError, match=says):
        columns.scan([content], media_type, ["a"])


def test_an_exact_scan_refuses_fields_beyond_the_projection():
    with pytest.raises(columns.ColumnError, match="header is a,b, not a"):
        columns.scan([b"a,b\n1,2\n"], CSV, ["a"], exact=True)
    with pytest.raises(columns.ColumnError, match="holds the fields a,b, not a"):
        columns.scan([b'{"a":1,"b":2}\n'], JSONL, ["a"], exact=True)


def signed(content: bytes, media_type: int, fields: list[str]) -> catalog_pb2.Manifest:
    found = columns.scan([content], media_type, fields)
    return catalog_pb2.Manifest(media_type=media_type, row_count=found.row_count, schema=[
        catalog_pb2.SchemaField(name=name, values_sha256=found.digests[name]) for name in fields])


def test_the_sdk_refuses_a_projection_whose_values_differ_from_the_signed_digests(tmp_path):
    manifest = signed(TABLE, CSV, ["区域", "beds", "note"])
    received = tmp_path / "beds.csv"
    projected = b"".join(columns.Projection([TABLE], CSV, ["区域", "beds"]))
    received.write_bytes(projected)
    _check_columns(Path(received), manifest, ["区域", "beds"])  # intact: accepted

    for altered in (projected.replace(b"12", b"13"),             # one value
                    projected + "汕头,1\n".encode(),                # one row more
                    projected.replace(b"beds", b"beds,note")):    # a field not granted
        received.write_bytes(altered)
        with pytest.raises(errors.VerificationError):
            _check_columns(Path(received), manifest, ["区域", "beds"])


def test_a_lone_carriage_return_in_a_cell_survives_the_projection():
    content = b'a,b\r\n"x\ry",1\r\n'
    projected = b"".join(columns.Projection([content], CSV, ["a"]))
    assert columns.scan([projected], CSV, ["a"], exact=True) == columns.scan([content], CSV, ["a"])


def test_a_byte_order_mark_is_not_part_of_the_first_field_name():
    with_bom = columns.scan([b"\xef\xbb\xbfregion,beds\n\xe5\xb9\xbf,1\n"], CSV, ["region"])
    assert with_bom == columns.scan([b"region,beds\n\xe5\xb9\xbf,1\n"], CSV, ["region"])


def test_a_schema_field_missing_from_the_header_is_refused():
    with pytest.raises(columns.ColumnError, match="lacks the schema fields Region"):
        columns.scan([b"region,beds\n1,2\n"], CSV, ["Region", "beds"])


def test_json_numbers_keep_their_decimal_value():
    precise = columns.scan([b'{"n":12345678901234567.89}\n'], JSONL, ["n"])
    rounded = columns.scan([b'{"n":1.2345678901234568e16}\n'], JSONL, ["n"])
    assert precise != rounded
    projected = b"".join(columns.Projection([b'{"n":12345678901234567.89}\n'], JSONL, ["n"]))
    assert projected == b'{"n":12345678901234567.89}\n'


@pytest.mark.parametrize("line", [b'{"n":NaN}\n', b'{"n":Infinity}\n', b'{"n":-Infinity}\n'])
def test_json_constants_that_are_not_numbers_are_refused(line):
    with pytest.raises(columns.ColumnError, match="not valid JSON"):
        columns.scan([line], JSONL, ["n"])


def by_definition(values: list[str]) -> bytes:
    """A column digest computed value by value, as the module docstring defines it."""
    hasher = hashlib.sha256()
    for value in values:
        data = value.encode()
        hasher.update(len(data).to_bytes(8, "big") + data)
    return hasher.digest()


@pytest.mark.parametrize("rows", [0, 1, 1023, 1024, 1025, 2048])
@pytest.mark.parametrize("media_type", [CSV, JSONL], ids=["csv", "json-lines"])
def test_any_row_count_scans_and_projects_across_batch_boundaries(media_type, rows):
    """Rows are hashed BATCH at a time: a count that is a multiple of it (0 included) leaves an
    empty last batch."""
    if media_type == CSV:
        content = ("id,v\n" + "".join(f"{i},x{i}\n" for i in range(rows))).encode()
    else:
        content = "".join(f'{{"id":"{i}","v":"x{i}"}}\n' for i in range(rows)).encode()
    found = columns.scan([content], media_type, ["id", "v"])
    quote = '"' if media_type == JSONL else ""
    assert found == columns.Columns({
        "id": by_definition([f"{quote}{i}{quote}" for i in range(rows)]),
        "v": by_definition([f"{quote}x{i}{quote}" for i in range(rows)]),
    }, rows)
    projection = columns.Projection([content], media_type, ["v"])
    projected = b"".join(projection)
    assert projection.columns == columns.Columns({"v": found.digests["v"]}, rows)
    assert columns.scan([projected], media_type, ["v"], exact=True) == projection.columns


def test_a_header_only_csv_has_no_rows():
    assert columns.scan([b"id,v\n"], CSV, ["id", "v"]) == \
        columns.Columns({"id": by_definition([]), "v": by_definition([])}, 0)
