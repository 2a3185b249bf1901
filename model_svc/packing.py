"""The CPU fast path: linear weights packed once for oneDNN, not repacked by every F.linear.

F.linear hands MKL a plain row-major weight, which it re-blocks on every call: at decode batch
sizes that traffic costs as much as the product itself. oneDNN's prepacked layout streams each
weight once per step (on a 2-core EPYC: 13.2 → 8.5 ms per 50M-parameter decode step at batch 1,
32 → 12 ms at batch 16; benchmarks/BENCHMARKS.md). The fairscale layers stay in place and keep
their model-parallel communication; only the matrix product changes.
"""

from __future__ import annotations

import types

import torch
from fairscale.nn.model_parallel.initialize import get_model_parallel_world_size
from fairscale.nn.model_parallel.layers import ColumnParallelLinear, RowParallelLinear
from fairscale.nn.model_parallel.mappings import gather_from_model_parallel_region, reduce_from_model_parallel_region
from torch import nn

from model_svc.model import Attention, FeedForward, Transformer


def _column_forward(self: ColumnParallelLinear, x: torch.Tensor) -> torch.Tensor:
    out = _linear(x, self.packed_weight)  # (..., out_features / world)
    # fairscale's region functions are autograd Functions that cost ~15 µs a call even with
    # nothing to communicate: skip them in a group of one.
    return gather_from_model_parallel_region(out) if self.gather_output and self.world_size > 1 else out


def _row_forward(self: RowParallelLinear, x: torch.Tensor) -> torch.Tensor:
    out = _linear(x, self.packed_weight)  # input is already split
    return reduce_from_model_parallel_region(out) if self.world_size > 1 else out


def can_pack(device: torch.device, dtype: torch.dtype) -> bool:
    """oneDNN packing applies to CPU float32 and bfloat16 when torch was built with it."""
    return device.type == "cpu" and dtype in (torch.float32, torch.bfloat16) and torch.backends.mkldnn.is_available()


def _pack(*weights: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(torch.cat([w.detach() for w in weights], dim=0))


def _fused_qkv(self: Attention, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return _linear(x, self.packed_qkv).split(self.qkv_sizes, dim=-1)


def _fused_gate_up(self: FeedForward, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return _linear(x, self.packed_gate_up).chunk(2, dim=-1)


def _linear(x: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


def prepack_linears(model: nn.Module) -> int:
    """Pack every linear weight for oneDNN, fusing q/k/v and w1/w3; return the matrices packed.

    A rank's wq, wk and wv (and w1 and w3) are column-parallel shards read by the same input:
    stacked into one matrix they are one product per step instead of three (two), which streams
    the same bytes with fewer, longer kernel calls.
    """
    world_size = get_model_parallel_world_size()
    count = 0
    for module in model.modules():
        if isinstance(module, Attention):
            module.register_buffer(
                "packed_qkv", _pack(module.wq.weight, module.wk.weight, module.wv.weight), persistent=False
            )
            module.qkv_sizes = [module.wq.weight.shape[0], module.wk.weight.shape[0], module.wv.weight.shape[0]]
            module.qkv = types.MethodType(_fused_qkv, module)
            for layer in (module.wq, module.wk, module.wv):
                layer.weight = None  # the packed copy replaces it: the shard is not held twice
            _pack_one(module.wo, world_size)
            count += 2
        elif isinstance(module, FeedForward):
            module.register_buffer("packed_gate_up", _pack(module.w1.weight, module.w3.weight), persistent=False)
            module.gate_up = types.MethodType(_fused_gate_up, module)
            module.w1.weight = module.w3.weight = None
            _pack_one(module.w2, world_size)
            count += 2
    if isinstance(model, Transformer):
        _pack_one(model.output, world_size)
        count += 1
    return count


def _pack_one(module: ColumnParallelLinear | RowParallelLinear, world_size: int) -> None:
    """Replace one fairscale linear's weight by its packed form and its forward by the packed one."""
    module.register_buffer("packed_weight", _pack(module.weight), persistent=False)
    module.weight = None
    module.world_size = world_size
    forward = _column_forward if isinstance(module, ColumnParallelLinear) else _row_forward
    module.forward = types.MethodType(forward, module)
