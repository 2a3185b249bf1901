"""Helpers shared by the benchmark scripts: model sizes, random checkpoints, machine description."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from model_svc.layout import random_state_dict, write_checkpoint
from model_svc.model import ModelArgs

# ~50M and ~110M float32 parameters with Llama-2's 32000-token vocabulary (53.4M and 113.0M).
SIZES: dict[str, ModelArgs] = {
    "50M": ModelArgs(dim=512, n_layers=6, n_heads=8, vocab_size=32000, multiple_of=256),
    "110M": ModelArgs(dim=768, n_layers=9, n_heads=12, vocab_size=32000, multiple_of=256),
}


def make_checkpoint(size: str, root: Path | None = None, world_size: int = 1) -> Path:
    """A random checkpoint of the named size in Meta's layout (cached under root)."""
    args = SIZES[size]
    root = root or Path(tempfile.gettempdir()) / "llama-grpc-bench"
    ckpt = root / f"{size}-d{args.dim}-l{args.n_layers}-mp{world_size}"  # a changed size is a new cache entry
    if not (ckpt / "params.json").exists():
        write_checkpoint(ckpt, args, random_state_dict(args), world_size)
    return ckpt


def machine() -> str:
    """One line describing this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}"
    )


def timeit(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    """Median seconds per call of fn."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]
