"""Decode-step cost against position: with the KV cache it is flat; without, it grows.

python -m benchmarks.kv_cache [--size 50M] [--positions 16 400]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import SIZES, machine, make_checkpoint, timeit
from model_svc.checkpoint import load_model
from model_svc.distributed import init_distributed


def main() -> None:
    """Print ms per decode step at each position, with the cache and recomputing the prefix."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="50M")
    parser.add_argument("--positions", type=int, nargs="+", default=[16, 400])
    parser.add_argument("--steps", type=int, default=16)
    args = parser.parse_args()
    init_distributed("cpu")
    model = load_model(
        make_checkpoint(args.size),
        max_seq_len=512,
        max_batch_size=1,
        device=torch.device("cpu"),
        dtype_name="float32",
        rank=0,
        world_size=1,
        prepack=True,
    )
    print(f"machine: {machine()}")
    print(f"model: {args.size} ({model.params.n_params / 1e6:.1f}M parameters, float32), batch 1")
    print(f"{'position':>9} {'ms/token (KV cache)':>20} {'ms/token (no cache)':>20}")
    prompt = torch.randint(3, model.params.vocab_size, (1, max(args.positions) + args.steps))
    for pos in args.positions:
        model.forward(prompt[:, :pos], 0)  # prefill up to pos

        def cached(pos: int = pos) -> None:
            for i in range(args.steps):
                model.forward(prompt[:, pos + i : pos + i + 1], pos + i)

        def recompute(pos: int = pos) -> None:
            model.forward(prompt[:, : pos + 1], 0)

        with_cache = timeit(cached, repeat=5) / args.steps
        without = timeit(recompute, repeat=3, warmup=1)
        print(f"{pos:>9} {with_cache * 1e3:>20.2f} {without * 1e3:>20.2f}")


if __name__ == "__main__":
    main()
