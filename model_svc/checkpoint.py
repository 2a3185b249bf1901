"""Load a checkpoint in Meta's layout: DIR/params.json and one consolidated.NN.pth per rank."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fairscale.nn.model_parallel.layers as fs_layers
import torch

from model_svc.model import ModelArgs, Transformer
from model_svc.packing import can_pack, prepack_linears

logger = logging.getLogger(__name__)

# Keys of params.json that map to ModelArgs, with the types they must have.
_PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "dim": (int,),
    "n_layers": (int,),
    "n_heads": (int,),
    "n_kv_heads": (int, type(None)),
    "vocab_size": (int,),
    "multiple_of": (int,),
    "ffn_dim_multiplier": (int, float, type(None)),
    "norm_eps": (int, float),
    "rope_theta": (int, float),
}
_REQUIRED = ("dim", "n_layers", "n_heads")
# Meta's checkpoints carry the rotary table; this model computes its own.
_IGNORED_KEYS = ("rope.freqs",)

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
_SUPPORTED: dict[str, tuple[str, ...]] = {
    "cpu": ("float32", "bfloat16"),
    "cuda": ("float32", "bfloat16", "float16"),
}


class CheckpointError(Exception):
    """A checkpoint or a load argument that cannot be served, with a message saying why."""


def resolve_dtype(name: str, device_type: str) -> torch.dtype:
    """The torch dtype for a --dtype name, if this device supports it."""
    if device_type not in _SUPPORTED:
        raise CheckpointError(f"unsupported device {device_type!r}: use one of {', '.join(_SUPPORTED)}")
    if name not in _SUPPORTED[device_type]:
        supported = ", ".join(_SUPPORTED[device_type])
        raise CheckpointError(f"unsupported dtype {name!r} on {device_type}: use one of {supported}")
    return DTYPES[name]


def read_params(ckpt_dir: Path) -> dict[str, Any]:
    """Read and check params.json; unknown keys are logged and ignored."""
    if not ckpt_dir.is_dir():
        raise CheckpointError(f"checkpoint directory {ckpt_dir} does not exist")
    path = ckpt_dir / "params.json"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: a Meta checkpoint directory has params.json")
    try:
        params = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(params, dict):
        raise CheckpointError(f"{path} must hold a JSON object, not {type(params).__name__}")
    missing = [k for k in _REQUIRED if k not in params]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    known = {}
    for key, value in params.items():
        if key not in _PARAM_TYPES:
            logger.warning("ignoring unknown key %r in %s", key, path)
            continue
        types = _PARAM_TYPES[key]
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise CheckpointError(f"{path}: {key} must be {want}, got {value!r}")
        known[key] = value
    for key in ("dim", "n_layers", "n_heads", "multiple_of"):
        if key in known and known[key] <= 0:
            raise CheckpointError(f"{path}: {key} must be positive, got {known[key]}")
    if known.get("n_kv_heads") is not None and known["n_kv_heads"] <= 0:
        raise CheckpointError(f"{path}: n_kv_heads must be positive, got {known['n_kv_heads']}")
    return known


def find_shards(ckpt_dir: Path, world_size: int) -> list[Path]:
    """The .pth shards in rank order; their number must equal the world size."""
    shards = sorted(ckpt_dir.glob("*.pth"))
    if not shards:
        raise CheckpointError(f"no .pth checkpoint files in {ckpt_dir}")
    if len(shards) != world_size:
        raise CheckpointError(
            f"{ckpt_dir} holds {len(shards)} shard(s) ({shards[0].name} ...) for model-parallel size "
            f"{len(shards)}, but the group has {world_size} rank(s): "
            f"run torchrun --nproc_per_node {len(shards)}"
        )
    return shards


def check_divisible(args: ModelArgs, world_size: int) -> None:
    """Every dimension fairscale splits must divide by the world size (fairscale would assert)."""
    if args.dim % args.n_heads:
        raise CheckpointError(f"dim {args.dim} is not a multiple of n_heads {args.n_heads}")
    if args.n_heads % args.kv_heads:
        raise CheckpointError(f"n_heads {args.n_heads} is not a multiple of n_kv_heads {args.kv_heads}")
    if (args.dim // args.n_heads) % 2:
        raise CheckpointError(f"head dimension {args.dim // args.n_heads} must be even for rotary embeddings")
    splits = {
        "vocab_size": args.vocab_size,
        "dim": args.dim,
        "n_heads": args.n_heads,
        "n_kv_heads": args.kv_heads,
        "the feed-forward hidden dimension": args.hidden_dim,
    }
    for name, size in splits.items():
        if size % world_size:
            raise CheckpointError(f"{name} {size} does not divide by the model-parallel world size {world_size}")


@contextlib.contextmanager
def skip_fairscale_init() -> Iterator[None]:
    """Build fairscale layers without initialising their weights (they are loaded or set after)."""
    # fairscale builds each full weight on every rank just to initialise it; the checkpoint's
    # tensors replace them, so leave the allocations untouched (no resident memory).
    saved = fs_layers._initialize_affine_weight
    fs_layers._initialize_affine_weight = lambda *args, **kwargs: None
    try:
        yield
    finally:
        fs_layers._initialize_affine_weight = saved


def _load_shard(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as e:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def _check_shapes(path: Path, state: dict[str, torch.Tensor], model: Transformer) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    if missing:
        raise CheckpointError(f"{path} lacks {len(missing)} tensor(s): {', '.join(missing[:5])}")
    if unexpected:
        raise CheckpointError(
            f"{path} has {len(unexpected)} tensor(s) params.json does not describe: {', '.join(unexpected[:5])}"
        )
    wrong = [
        f"{k} is {list(state[k].shape)}, params.json implies {list(shape)}"
        for k, shape in expected.items()
        if tuple(state[k].shape) != shape
    ]
    if wrong:
        raise CheckpointError(f"{path}: tensor shapes do not match params.json: {'; '.join(wrong[:3])}")


def build_args(params: dict[str, Any], *, vocab_size: int, max_seq_len: int, max_batch_size: int) -> ModelArgs:
    """ModelArgs from params.json, the checkpoint's vocabulary and the serving limits."""
    if max_seq_len < 2:
        raise CheckpointError(f"max_seq_len must be at least 2, got {max_seq_len}")
    if max_batch_size < 1:
        raise CheckpointError(f"max_batch_size must be at least 1, got {max_batch_size}")
    fields = {k: v for k, v in params.items() if k != "vocab_size"}
    return ModelArgs(max_seq_len=max_seq_len, max_batch_size=max_batch_size, vocab_size=vocab_size, **fields)


def load_model(
    ckpt_dir: Path,
    *,
    max_seq_len: int,
    max_batch_size: int,
    device: torch.device,
    dtype_name: str,
    rank: int,
    world_size: int,
    prepack: bool = False,
) -> Transformer:
    """Build the Transformer for this rank from its shard, memory-mapped, with caches allocated.

    prepack: pack the linear weights for oneDNN (CPU), the serving fast path (model_svc.packing).
    """
    start = time.perf_counter()
    dtype = resolve_dtype(dtype_name, device.type)
    params = read_params(ckpt_dir)
    shards = find_shards(ckpt_dir, world_size)
    state = _load_shard(shards[rank])
    if "tok_embeddings.weight" not in state or state["tok_embeddings.weight"].dim() != 2:
        raise CheckpointError(f"{shards[rank]} has no 2-D tok_embeddings.weight to take the vocabulary from")
    vocab_size = state["tok_embeddings.weight"].shape[0]
    args = build_args(params, vocab_size=vocab_size, max_seq_len=max_seq_len, max_batch_size=max_batch_size)
    check_divisible(args, world_size)
    for key in _IGNORED_KEYS:
        state.pop(key, None)
    with skip_fairscale_init():
        model = Transformer(args)
    _check_shapes(shards[rank], state, model)
    # Converted one tensor at a time, so a dtype or device change never holds the shard twice.
    state = {k: v.to(device=device, dtype=dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.eval().requires_grad_(False)
    model.setup_caches(device, dtype)
    n_params = sum(math.prod(t.shape) for t in state.values())
    del state
    if prepack and can_pack(device, dtype):
        prepack_linears(model)
    logger.info(
        "loaded %s (rank %d of %d, %.1fM parameters in this shard, %s on %s) in %.2f s",
        shards[rank].name,
        rank,
        world_size,
        n_params / 1e6,
        dtype_name,
        device,
        time.perf_counter() - start,
    )
    return model
