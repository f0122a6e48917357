"""Manifest field validation, names, region prefixes and FTS query building, without a server."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from gateway import catalog
from gateway.config import LimitsConfig
from gateway.v1 import catalog_pb2
from govshare import errors, times

NOW = times.from_text(times.to_text(times.utcnow()))


def valid(**fields: Any) -> catalog_pb2.Manifest:
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(NOW)
    values: dict[str, Any] = {
        "dataset": "agencies/gd-health/datasets/beds", "version": 1, "title": "Beds",
        "media_type": catalog_pb2.MEDIA_TYPE_CSV,
        "classification": catalog_pb2.CLASSIFICATION_PUBLIC,
        "sharing_type": catalog_pb2.SHARING_TYPE_CONDITIONAL,
        "update_cycle": catalog_pb2.UPDATE_CYCLE_DAILY,
        "content_sha256": hashlib.sha256(b"x").digest(), "content_size": 1,
        "create_time": created,
    }
    values.update(fields)
    return catalog_pb2.Manifest(**values)


def check(manifest: catalog_pb2.Manifest, limit: int = 1000) -> None:
    catalog.validate_manifest(manifest, publisher="gd-health",
                              limits=LimitsConfig(max_dataset_bytes=limit), now=NOW,
                              clock_skew=timedelta(minutes=5))


def test_a_valid_manifest_passes() -> None:
    check(valid(tags=["a", "b"], schema=[catalog_pb2.SchemaField(
        name="x", type=catalog_pb2.FIELD_TYPE_DATE, sensitivity=catalog_pb2.SENSITIVITY_NONE)]))


@pytest.mark.parametrize("dataset_id", ["../x", "a/b", "ab\0c", "a" * 300, "Beds", "ab-", "x",
                                        "beds\n", ""])
def test_dataset_ids_outside_the_pattern_are_refused(dataset_id: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        check(valid(dataset=f"agencies/gd-health/datasets/{dataset_id}"))
    assert caught.value.metadata["field"] == "manifest.dataset"


@pytest.mark.parametrize(("fields", "field"), [
    ({"version": -1}, "manifest.version"),
    ({"title": " "}, "manifest.title"),
    ({"abstract": "a" * 4001}, "manifest.abstract"),
    ({"media_type": 0}, "manifest.media_type"),
    ({"media_type": 17}, "manifest.media_type"),
    ({"classification": 4}, "manifest.classification"),
    ({"sharing_type": 0}, "manifest.sharing_type"),
    ({"update_cycle": 0}, "manifest.update_cycle"),
    ({"legal_basis": "l" * 4001}, "manifest.legal_basis"),
    ({"tags": ["a", "a"]}, "manifest.tags"),
    ({"tags": ["t" * 41]}, "manifest.tags[0]"),
    ({"content_sha256": b""}, "manifest.content_sha256"),
    ({"content_size": -1}, "manifest.content_size"),
    ({"create_time": None}, "manifest.create_time"),
    ({"schema": [catalog_pb2.SchemaField(name="", type=1, sensitivity=1)]},
     "manifest.schema[0].name"),
    ({"schema": [catalog_pb2.SchemaField(name="a", type=1, sensitivity=1)] * 2},
     "manifest.schema[1].name"),
    ({"schema": [catalog_pb2.SchemaField(name="a", type=1, sensitivity=9)]},
     "manifest.schema[0].sensitivity"),
])
def test_invalid_fields_name_the_field(fields: dict, field: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        check(valid(**fields))
    assert caught.value.metadata["field"] == field


def test_another_agencys_dataset_is_permission_denied() -> None:
    with pytest.raises(errors.PermissionDenied):
        check(valid(dataset="agencies/sz-market/datasets/beds"))


def test_size_above_the_limit_is_resource_exhausted() -> None:
    with pytest.raises(errors.ResourceExhausted):
        check(valid(content_size=1001), limit=1000)


def test_stale_manifest_is_refused() -> None:
    stale = timestamp_pb2.Timestamp()
    stale.FromDatetime(NOW - timedelta(hours=1))
    with pytest.raises(errors.InvalidArgument) as caught:
        check(valid(create_time=stale))
    assert caught.value.reason == "CLOCK_SKEW"


def test_fts_query_quotes_every_word_as_a_prefix() -> None:
    assert catalog.fts_query('hospital "beds" OR NEAR(x*') == (
        '"hospital"* AND "beds"* AND "OR"* AND "NEAR"* AND "x"*')
    assert catalog.fts_query("") == ""
    with pytest.raises(errors.InvalidArgument):
        catalog.fts_query("***")


@pytest.mark.parametrize(("code", "prefix"), [("440000", "44"), ("440300", "4403"),
                                              ("441000", "4410"), ("440305", "440305")])
def test_region_prefix(code: str, prefix: str) -> None:
    assert catalog._region_prefix(code) == prefix


def test_fts_query_makes_a_run_of_chinese_characters_a_phrase_of_single_characters() -> None:
    assert catalog.fts_query("医院") == '"医  院"*'
    assert catalog.fts_query("医") == '"医"*'
    assert catalog.fts_query("2023年 beds") == '"2023 年"* AND "beds"*'
    assert catalog.fts_query('医院" OR "x') == '"医  院"* AND "OR"* AND "x"*'


def digested(*digests: bytes, **fields: Any) -> catalog_pb2.Manifest:
    """A manifest whose schema fields x0, x1, ... carry `digests` (b"" for none)."""
    schema = [catalog_pb2.SchemaField(name=f"x{index}", type=catalog_pb2.FIELD_TYPE_STRING,
                                      sensitivity=catalog_pb2.SENSITIVITY_NONE,
                                      values_sha256=digest)
              for index, digest in enumerate(digests)]
    return valid(schema=schema, **fields)


def test_column_digests_on_csv_and_json_lines_pass() -> None:
    for media_type in (catalog_pb2.MEDIA_TYPE_CSV, catalog_pb2.MEDIA_TYPE_JSON_LINES):
        check(digested(bytes(32), bytes(32), media_type=media_type, row_count=3))


@pytest.mark.parametrize(("manifest", "field"), [
    (digested(bytes(32), media_type=catalog_pb2.MEDIA_TYPE_OCTET_STREAM), "manifest.schema"),
    (digested(bytes(32), media_type=catalog_pb2.MEDIA_TYPE_PARQUET), "manifest.schema"),
    (digested(bytes(32), bytes(31)), "manifest.schema[1].values_sha256"),
    (digested(bytes(32), b""), "manifest.schema[1].values_sha256"),
    (digested(b"", bytes(32)), "manifest.schema[0].values_sha256"),
    (digested(bytes(32), row_count=-1), "manifest.row_count"),
    (digested(b"", row_count=2), "manifest.row_count"),
])
def test_column_digests_out_of_place_are_refused(manifest: catalog_pb2.Manifest,
                                                 field: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        check(manifest)
    assert caught.value.metadata["field"] == field
