"""Generate the Python gRPC code for protos/ into llama/v1/, or check that it is current."""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE_DIR = Path("llama") / "v1"


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on every proto of llama.v1, writing modules under out_dir; return them."""
    protos = sorted((PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    init = out_dir / PACKAGE_DIR / "__init__.py"
    init.write_text('"""Generated protobuf and gRPC code for llama.v1 (scripts/gen_protos.py)."""\n')
    return sorted((out_dir / PACKAGE_DIR).iterdir())


def main() -> int:
    """Generate, or with --check report whether the committed code is stale."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if llama/v1 differs from protos/")
    args = parser.parse_args()
    if not args.check:
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p for p in generate(Path(tmp)) if p.is_file()}
        committed = {p.name: p for p in (ROOT / PACKAGE_DIR).glob("*") if p.is_file()}
        stale = sorted(
            name
            for name in fresh.keys() | committed.keys()
            if name not in fresh
            or name not in committed
            or not filecmp.cmp(fresh[name], committed[name], shallow=False)
        )
    if stale:
        print(f"generated code is stale, run `make protos`: {', '.join(stale)}", file=sys.stderr)
        return 1
    print("generated code is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
