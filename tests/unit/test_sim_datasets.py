"""The simulated datasets: deterministic from a seed, consistent with their schemas, sized."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from agencies.sim import datasets, roster
from gateway.v1 import catalog_pb2 as c

SMALL = [spec for spec in datasets.DATASETS if not spec.large]
LARGE = [spec for spec in datasets.DATASETS if spec.large]
MiB = 1024 * 1024


def content(spec: datasets.DatasetSpec, seed: int = 7, version: int = 1,
            large_bytes: int = 0) -> bytes:
    return b"".join(spec.chunks(seed, version, large_bytes))


@pytest.mark.parametrize("spec", datasets.DATASETS, ids=lambda spec: spec.name)
def test_same_seed_same_bytes(spec):
    first = content(spec, large_bytes=MiB)
    assert content(spec, large_bytes=MiB) == first
    assert spec.digest(7, 1, MiB) == (hashlib.sha256(first).digest(), len(first))


@pytest.mark.parametrize("spec", datasets.DATASETS, ids=lambda spec: spec.name)
def test_seed_and_version_change_the_bytes(spec):
    first = content(spec, large_bytes=MiB)
    assert content(spec, seed=8, large_bytes=MiB) != first
    assert content(spec, version=2, large_bytes=MiB) != first


@pytest.mark.parametrize("spec", SMALL, ids=lambda spec: spec.name)
def test_small_datasets_are_kilobytes(spec):
    assert 512 <= len(content(spec)) < MiB


@pytest.mark.parametrize("size", [MiB, 3 * MiB])
def test_large_dataset_has_the_requested_size_within_a_chunk(size):
    (spec,) = LARGE
    chunks = list(spec.chunks(7, 1, size))
    assert size <= sum(map(len, chunks)) < size + 2 * datasets.CHUNK_CHARS
    assert all(len(chunk) < 2 * datasets.CHUNK_CHARS for chunk in chunks)
    assert b"".join(chunks).endswith(b"\n")


@pytest.mark.parametrize("spec", datasets.DATASETS, ids=lambda spec: spec.name)
def test_content_matches_the_schema(spec):
    lines = content(spec, large_bytes=MiB).decode().splitlines()
    if spec.media_type == c.MEDIA_TYPE_JSON_LINES:
        assert all(list(json.loads(line)) == spec.field_names for line in lines)
        return
    header, *rows = lines
    assert header.split(",") == spec.field_names
    assert rows and all(len(row.split(",")) == len(spec.fields) for row in rows)
    for column, field in enumerate(spec.fields):
        values = [row.split(",")[column] for row in rows[:50]]
        if field.type == c.FIELD_TYPE_INTEGER:
            assert all(re.fullmatch(r"-?\d+", value) for value in values), field.name
        if field.type == c.FIELD_TYPE_DECIMAL:
            assert all(re.fullmatch(r"-?\d+(\.\d+)?", value) for value in values), field.name
        if field.type == c.FIELD_TYPE_DATE:
            assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", value) for value in values), field.name


def test_manifests_make_sense():
    for spec in datasets.DATASETS:
        manifest = spec.manifest()
        assert manifest.dataset == spec.name
        assert [f.name for f in manifest.schema] == spec.field_names
        assert 1 <= len(manifest.title) <= 200 and len(manifest.abstract) <= 4000
        assert len(manifest.tags) <= 20
        if spec.sharing_type == c.SHARING_TYPE_NOT_SHARED:
            assert manifest.legal_basis
        if spec.personal_fields():
            assert spec.classification != c.CLASSIFICATION_PUBLIC, spec.name
    allowance = datasets.dataset("agencies/js-civil/datasets/minimum-living-allowance")
    assert allowance.sharing_type == c.SHARING_TYPE_NOT_SHARED
    assert allowance.classification == c.CLASSIFICATION_CONFIDENTIAL
    assert "社会救助暂行办法" in allowance.legal_basis


def test_every_agency_publishes_and_the_roster_spans_four_provinces():
    agencies = roster.roster()
    assert {spec.owner for spec in datasets.DATASETS} == {agency.id for agency in agencies}
    assert len({agency.region_code[:2] for agency in agencies}) >= 4
    assert all(re.fullmatch(r"\d{6}", agency.region_code) for agency in agencies)


def test_credit_codes_carry_a_valid_check_character():
    rng = datasets.random.Random(1)
    for _ in range(100):
        code = datasets.credit_code(rng, "440300")
        assert len(code) == 18 and code.startswith("91440300")
        weights = datasets._CREDIT_WEIGHTS
        total = sum(datasets._CREDIT_CHARS.index(ch) * w
                    for ch, w in zip(code[:17], weights, strict=True))
        assert (datasets._CREDIT_CHARS.index(code[17]) + total) % 31 == 0
