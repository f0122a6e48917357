"""Published test vectors, vendored under tests/vectors/data (PROVENANCE.md: sources, licenses,
formats).

Vector files become test parameters at collection time, one test per file, named after it. A
folder that yields no vectors fails the run: a vector test never passes by having nothing to
check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parent / "data"

_GLOBS = {
    "inclusion_vector": "merkle/inclusion/**/*.json",
    "consistency_vector": "merkle/consistency/**/*.json",
}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _signed_note_params(need_private_key: bool) -> list[Any]:
    """One parameter per vector of signed-note.json (only those we can sign with, if asked)."""
    vectors = _load(DATA / "signed-note.json")["vectors"]
    return [
        pytest.param(v, id=v["text"].split()[0] + str(i))
        for i, v in enumerate(vectors)
        if "signer_key" in v or not need_private_key
    ]


_WITNESS = {
    "witness_key": ("keys.json", ("keys",)),
    "vkey_vector": ("keys.json", ("vkey_parsing", "cases")),
    "witness_note_vector": ("signed-notes.json", ("vectors",)),
    "message_vector": ("cosignatures.json", ("message_construction",)),
    "cosignature_parse_vector": ("cosignatures.json", ("parse_only",)),
    "cosignature_vector": ("cosignatures.json", ("verify",)),
    "add_checkpoint_parse_vector": ("add-checkpoint.json", ("parse", "cases")),
    "witness_scenario": ("add-checkpoint.json", ("transparency_dev_witness", "scenarios")),
}
"""Fixture -> (file under witness/, keys to its list of vectors): one test per vector."""


def _witness_params(name: str, keys: tuple[str, ...]) -> list[Any]:
    vectors = _load(DATA / "witness" / name)
    for key in keys:
        vectors = vectors[key]
    return [pytest.param(v, id=v.get("id") or v.get("vkey") or f"{keys[-1]}{i}")
            for i, v in enumerate(vectors)]


def _require(params: list[Any], what: str) -> list[Any]:
    if not params:
        raise pytest.UsageError(f"no {what} vectors found under {DATA}")
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize each vector fixture by file (or by vector, for signed notes)."""
    for fixture, pattern in _GLOBS.items():
        if fixture in metafunc.fixturenames:
            params = [
                pytest.param(path, id=path.relative_to(DATA / "merkle").with_suffix("").as_posix())
                for path in sorted(DATA.glob(pattern))
            ]
            metafunc.parametrize(fixture, _require(params, fixture), indirect=True)
    for fixture, (name, keys) in _WITNESS.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, _require(_witness_params(name, keys), fixture))
    for fixture, need_private_key in (("note_vector", False), ("note_signing_vector", True)):
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, _require(_signed_note_params(need_private_key), fixture),
                                 indirect=True)


@pytest.fixture
def inclusion_vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


@pytest.fixture
def consistency_vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


@pytest.fixture
def note_vector(request: pytest.FixtureRequest) -> dict[str, str]:
    return request.param


@pytest.fixture
def note_signing_vector(request: pytest.FixtureRequest) -> dict[str, str]:
    return request.param


@pytest.fixture
def reference_tree() -> dict[str, Any]:
    return _load(DATA / "merkle" / "reference-tree.json")


@pytest.fixture
def witness_keys() -> dict[str, dict[str, str]]:
    """The keys of witness/keys.json by id."""
    return {key["id"]: key for key in _load(DATA / "witness" / "keys.json")["keys"]}


@pytest.fixture
def cosignature_vectors() -> dict[str, Any]:
    return _load(DATA / "witness" / "cosignatures.json")


@pytest.fixture
def add_checkpoint_vectors() -> dict[str, Any]:
    return _load(DATA / "witness" / "add-checkpoint.json")
