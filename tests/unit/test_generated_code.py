"""The committed generated code is exactly what `make proto` produces from the contract."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("generate", REPO / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_matches_the_protos(tmp_path):
    fresh = _generator().generate(tmp_path)
    committed = sorted((REPO / "gateway" / "v1").glob("*_pb2*.py*"))
    assert [p.name for p in fresh] == [p.name for p in committed]
    drifted = [p.name for p in fresh
               if p.read_bytes() != (REPO / "gateway" / "v1" / p.name).read_bytes()]
    assert drifted == [], f"run `make proto` and commit: {drifted} differ from the protos"
