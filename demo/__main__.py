"""python -m demo [--out DIR]: make the demo model if it is not there yet, and print where it is.

The model is trained here, from a corpus this project writes, in about 2.5 minutes on 2 cores:
DIR/tokenizer.model, DIR/mp1 (one shard) and DIR/mp2 (two shards, for torchrun --nproc_per_node 2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from demo.train import TrainConfig, train

VERSION = "demo-v1"  # bump when the corpus or the model changes, so caches are rebuilt


def default_dir() -> Path:
    """$XDG_CACHE_HOME/llama-grpc/demo-v1 (~/.cache by default): outside the repository."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llama-grpc" / VERSION


def is_complete(out: Path) -> bool:
    """Every file the services need is there."""
    files = ["tokenizer.model", "mp1/params.json", "mp1/consolidated.00.pth", "mp2/consolidated.01.pth"]
    return all((out / f).is_file() for f in files)


def main(argv: list[str] | None = None) -> int:
    """Build the demo model unless it is cached."""
    p = argparse.ArgumentParser(
        prog="python -m demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=None, help="where to put it (default ~/.cache/llama-grpc/demo-v1)")
    p.add_argument("--seconds", type=float, default=TrainConfig.seconds, help="training time budget")
    p.add_argument("--force", action="store_true", help="train again even if it is cached")
    args = p.parse_args(argv)
    out = args.out or default_dir()
    if is_complete(out) and not args.force:
        print(f"demo model: {out} (cached)")
        return 0
    print(f"making the demo model in {out} (first run only; about {args.seconds / 60:.1f} minutes)", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=out.parent))
    try:
        train(tmp, TrainConfig(seconds=args.seconds))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)  # all or nothing: an interrupted run leaves no half-written model
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"demo model: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
