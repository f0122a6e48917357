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
