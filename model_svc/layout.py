"""Meta's checkpoint layout: how full weights split into model-parallel shards, and back."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from model_svc.model import ModelArgs

# Column-parallel weights split their output rows (dim 0); row-parallel weights their input
# columns (dim 1); ParallelEmbedding splits the embedding dimension (dim 1).
_COLUMN = ("attention.wq", "attention.wk", "attention.wv", "feed_forward.w1", "feed_forward.w3", "output")
_ROW = ("attention.wo", "feed_forward.w2", "tok_embeddings")


def split_dim(key: str) -> int | None:
    """The dimension a tensor is split on across ranks, or None where every rank holds all of it."""
    name = key.removesuffix(".weight")
    if name.endswith(_COLUMN):
        return 0
    if name.endswith(_ROW):
        return 1
    return None


def shard_state_dict(state: dict[str, torch.Tensor], world_size: int) -> list[dict[str, torch.Tensor]]:
    """Split a full state dict into world_size shards the way Meta's consolidated.NN.pth are."""
    shards: list[dict[str, torch.Tensor]] = [{} for _ in range(world_size)]
    for key, tensor in state.items():
        dim = split_dim(key)
        parts = [tensor] * world_size if dim is None else torch.chunk(tensor, world_size, dim=dim)
        for shard, part in zip(shards, parts, strict=True):
            shard[key] = part.clone()
    return shards


def merge_shards(shards: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Join Meta's shards into the full state dict."""
    merged = {}
    for key in shards[0]:
        dim = split_dim(key)
        merged[key] = shards[0][key] if dim is None else torch.cat([s[key] for s in shards], dim=dim)
    return merged


def params_json(args: ModelArgs) -> dict[str, Any]:
    """The params.json Meta ships for these hyper-parameters (vocab_size -1: from the tokenizer)."""
    params: dict[str, Any] = {
        "dim": args.dim,
        "n_layers": args.n_layers,
        "n_heads": args.n_heads,
        "multiple_of": args.multiple_of,
        "norm_eps": args.norm_eps,
        "vocab_size": -1,
    }
    if args.n_kv_heads is not None:
        params["n_kv_heads"] = args.n_kv_heads
    if args.ffn_dim_multiplier is not None:
        params["ffn_dim_multiplier"] = args.ffn_dim_multiplier
    if args.rope_theta != 10000.0:
        params["rope_theta"] = args.rope_theta
    return params


def write_checkpoint(ckpt_dir: Path, args: ModelArgs, state: dict[str, torch.Tensor], world_size: int) -> None:
    """Write params.json and consolidated.00.pth … one shard per model-parallel rank."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    (ckpt_dir / "params.json").write_text(json.dumps(params_json(args), indent=2) + "\n")
    for rank, shard in enumerate(shard_state_dict(state, world_size)):
        torch.save(shard, ckpt_dir / f"consolidated.{rank:02d}.pth")


def full_shapes(args: ModelArgs) -> dict[str, tuple[int, ...]]:
    """The full (unsharded) tensor shapes of a Llama-2 state dict."""
    hd = args.head_dim
    shapes: dict[str, tuple[int, ...]] = {"tok_embeddings.weight": (args.vocab_size, args.dim)}
    for i in range(args.n_layers):
        p = f"layers.{i}."
        shapes |= {
            p + "attention.wq.weight": (args.n_heads * hd, args.dim),
            p + "attention.wk.weight": (args.kv_heads * hd, args.dim),
            p + "attention.wv.weight": (args.kv_heads * hd, args.dim),
            p + "attention.wo.weight": (args.dim, args.n_heads * hd),
            p + "feed_forward.w1.weight": (args.hidden_dim, args.dim),
            p + "feed_forward.w2.weight": (args.dim, args.hidden_dim),
            p + "feed_forward.w3.weight": (args.hidden_dim, args.dim),
            p + "attention_norm.weight": (args.dim,),
            p + "ffn_norm.weight": (args.dim,),
        }
    shapes |= {"norm.weight": (args.dim,), "output.weight": (args.vocab_size, args.dim)}
    return shapes


def random_state_dict(args: ModelArgs, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random full weights whose every part matters: unit-scale sublayers, norms away from 1.

    Each linear layer gets std 1/sqrt(fan_in), so attention and the KV cache change the logits as
    much as the embedding does, and a wrong cache or rotary position cannot hide; logits come out
    with a spread of a few units, so greedy choices are not near-ties.
    """
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in full_shapes(args).items():
        if len(shape) == 1:
            state[key] = 1.0 + 0.2 * torch.randn(shape, generator=gen)
        elif key == "tok_embeddings.weight":
            state[key] = torch.randn(shape, generator=gen)
        else:
            scale = 2.0 if key == "output.weight" else 1.0
            state[key] = torch.randn(shape, generator=gen) * (scale / math.sqrt(shape[1]))
    return state
