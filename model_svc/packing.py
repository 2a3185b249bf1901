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


def _packed_product(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, module.packed_weight, None, "none", [], "")


def _column_forward(self: ColumnParallelLinear, x: torch.Tensor) -> torch.Tensor:
    out = _packed_product(self, x)  # (..., out_features / world)
    # fairscale's region functions are autograd Functions that cost ~15 µs a call even with
    # nothing to communicate: skip them in a group of one.
    return gather_from_model_parallel_region(out) if self.gather_output and self.world_size > 1 else out


def _row_forward(self: RowParallelLinear, x: torch.Tensor) -> torch.Tensor:
    out = _packed_product(self, x)  # input is already split
    return reduce_from_model_parallel_region(out) if self.world_size > 1 else out


def can_pack(device: torch.device, dtype: torch.dtype) -> bool:
    """oneDNN packing applies to CPU float32 and bfloat16 when torch was built with it."""
    return device.type == "cpu" and dtype in (torch.float32, torch.bfloat16) and torch.backends.mkldnn.is_available()


def prepack_linears(model: nn.Module) -> int:
    """Replace every fairscale linear's weight by its oneDNN-packed form; return how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, ColumnParallelLinear | RowParallelLinear) and module.bias is None:
            packed = torch.ops.mkldnn._reorder_linear_weight(module.weight.detach())
            module.weight = None  # the packed copy replaces it: the shard is not held twice
            module.register_buffer("packed_weight", packed, persistent=False)
            module.world_size = get_model_parallel_world_size()
            forward = _column_forward if isinstance(module, ColumnParallelLinear) else _row_forward
            module.forward = types.MethodType(forward, module)
            count += 1
    return count
