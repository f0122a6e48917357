"""Published test vectors from ../shared/testdata (see its README.md for sources and formats).

Vector files become test parameters at collection time, one test per file, named after it. When
the folder is absent each vector test skips with one explicit message; that is the only skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

MISSING = "published vectors at ../shared/testdata were not found (set GOVSHARE_TESTDATA)"

_GLOBS = {
    "inclusion_vector": "merkle/inclusion/**/*.json",
    "consistency_vector": "merkle/consistency/**/*.json",
}


def vectors_root() -> Path:
    override = os.environ.get("GOVSHARE_TESTDATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "testdata"


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _signed_note_params(root: Path, need_private_key: bool) -> list[Any]:
    """One parameter per vector of signed-note.json (only those we can sign with, if asked)."""
    vectors = _load(root / "signed-note.json")["vectors"]
    return [
        pytest.param(v, id=v["text"].split()[0] + str(i))
        for i, v in enumerate(vectors)
        if "signer_key" in v or not need_private_key
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize vector fixtures by file, or with one placeholder that skips if data is absent."""
    root = vectors_root()
    for fixture, pattern in _GLOBS.items():
        if fixture in metafunc.fixturenames:
            files = sorted(root.glob(pattern)) if root.is_dir() else []
            params = [
                pytest.param(path, id=path.relative_to(root / "merkle").with_suffix("").as_posix())
                for path in files
            ]
            metafunc.parametrize(fixture, params or [None], indirect=True)
    for fixture, need_private_key in (("note_vector", False), ("note_signing_vector", True)):
        if fixture in metafunc.fixturenames:
            params = _signed_note_params(root, need_private_key) if root.is_dir() else []
            metafunc.parametrize(fixture, params or [None], indirect=True)


def _require(param: Any) -> Any:
    """Skip when the vectors are absent; fail when the folder exists but yields nothing."""
    if param is None:
        if not vectors_root().is_dir():
            pytest.skip(MISSING)
        pytest.fail(f"no vector files found under {vectors_root()}")
    return param


@pytest.fixture
def inclusion_vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(_require(request.param))


@pytest.fixture
def consistency_vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(_require(request.param))


@pytest.fixture
def note_vector(request: pytest.FixtureRequest) -> dict[str, str]:
    return _require(request.param)


@pytest.fixture
def note_signing_vector(request: pytest.FixtureRequest) -> dict[str, str]:
    return _require(request.param)


@pytest.fixture
def reference_tree() -> dict[str, Any]:
    path = vectors_root() / "merkle" / "reference-tree.json"
    if not vectors_root().is_dir():
        pytest.skip(MISSING)
    return _load(path)
