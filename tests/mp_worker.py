"""Run under torchrun: load a sharded checkpoint and save rank 0's logits and greedy tokens."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model_svc.checkpoint import load_model
from model_svc.distributed import init_distributed, set_thread_budget, shutdown_distributed
from model_svc.generation import generate


def main() -> None:
    """Compute logits for --tokens and greedy generations for --prompts; rank 0 saves them to --out."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt-dir", type=Path, required=True)
    parser.add_argument("--inputs", type=Path, required=True, help="JSON: {tokens, prompts, max_gen_len}")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-seq-len", type=int, default=128)
    args = parser.parse_args()
    ctx = init_distributed("cpu")
    set_thread_budget(ctx.local_world_size)
    inputs = json.loads(args.inputs.read_text())
    model = load_model(
        args.ckpt_dir,
        max_seq_len=args.max_seq_len,
        max_batch_size=32,
        device=ctx.device,
        dtype_name="float32",
        rank=ctx.rank,
        world_size=ctx.world_size,
        prepack=True,
    )
    logits = model.forward(torch.tensor(inputs["tokens"]), 0)
    results = generate(model, inputs["prompts"], inputs["max_gen_len"], 0.0, 1.0, True, False, [])
    if ctx.rank == 0:
        torch.save(
            {"logits": logits, "tokens": [r.tokens for r in results], "logprobs": [r.logprobs for r in results]},
            args.out,
        )
    shutdown_distributed()


if __name__ == "__main__":
    main()
