"""Generate the Python code for the gateway.v1 API: `python proto/generate.py [OUT_DIR]`.

The generated modules are committed under gateway/v1/; tests regenerate them into a temporary
directory and fail when the committed copy differs, so the contract and the code never drift.
"""

import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent
WELL_KNOWN = Path(grpc_tools.__file__).resolve().parent / "_proto"


def generate(out_dir: Path = REPO_ROOT) -> list[Path]:
    """Run protoc on every proto/gateway/v1/*.proto; return the files written."""
    protos = PROTO_ROOT.glob("gateway/v1/*.proto")
    sources = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in protos)
    out = str(out_dir)
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{WELL_KNOWN}", f"--python_out={out}",
            f"--pyi_out={out}", f"--grpc_python_out={out}", *sources]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out_dir / "gateway" / "v1").glob("*_pb2*.py*"))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT
    for path in generate(target):
        print(path)
