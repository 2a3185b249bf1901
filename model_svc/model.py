"""The Llama-2 transformer with fairscale model parallelism and a slot-based KV cache.

Meta's `model.py`, reshaped so that every row of a batch sits at its own position: the KV cache
has `max_batch_size` slots, a forward pass covers the consecutive slots
`[first_slot, first_slot + bsz)`, and row r's queries start at `start_pos[r]`. Continuous batching
(model_svc.engine) keeps its live rows in consecutive slots, so attention reads the cache as a view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import fairscale.nn.model_parallel.initialize as fs_init
import torch
import torch.nn.functional as F
from fairscale.nn.model_parallel.layers import (
    ColumnParallelLinear,
    ParallelEmbedding,
    RowParallelLinear,
)
from torch import nn


@dataclass
class ModelArgs:
    """Model hyper-parameters: the fields of Meta's params.json plus the serving limits."""

    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int | None = None
    vocab_size: int = -1  # from the checkpoint's tok_embeddings, not params.json
    multiple_of: int = 256  # make the SwiGLU hidden layer a multiple of this
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 2048
    max_batch_size: int = 32

    @property
    def kv_heads(self) -> int:
        """Key/value heads: n_kv_heads, or n_heads without grouped-query attention."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.dim // self.n_heads

    @property
    def n_params(self) -> int:
        """Parameters of the whole model (all shards together)."""
        attention = self.dim * self.head_dim * (2 * self.n_heads + 2 * self.kv_heads)
        per_layer = attention + 3 * self.dim * self.hidden_dim + 2 * self.dim
        return self.n_layers * per_layer + 2 * self.vocab_size * self.dim + self.dim

    @property
    def hidden_dim(self) -> int:
        """Width of the SwiGLU hidden layer, computed as Meta's FeedForward does."""
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)


class RMSNorm(nn.Module):
    """Root-mean-square layer norm, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Meta's x * rsqrt(mean(x²) + eps) in float32, as one fused op.
        out = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        return out.type_as(x) * self.weight


def precompute_freqs_cis(head_dim: int, end: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotary frequencies as unit complex numbers: (end, head_dim // 2)."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2)[: (head_dim // 2)].float() / head_dim))
    t = torch.arange(end, dtype=torch.float32)
    return torch.polar(torch.ones(end, head_dim // 2), torch.outer(t, freqs))


def apply_rotary_emb(xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate query and key pairs; freqs_cis is (bsz, seqlen, head_dim // 2), one row per position."""
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))  # (bsz, seqlen, heads, hd/2)
    xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    freqs = freqs_cis.unsqueeze(2)  # (bsz, seqlen, 1, hd/2)
    xq_out = torch.view_as_real(xq_ * freqs).flatten(3)
    xk_out = torch.view_as_real(xk_ * freqs).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


class Placement(NamedTuple):
    """Where a forward pass's queries sit in the KV cache."""

    first_slot: int  # rows occupy slots first_slot .. first_slot + bsz - 1
    rows: torch.Tensor  # (bsz, seqlen) slot of each query
    positions: torch.Tensor  # (bsz, seqlen) position of each query
    kv_len: int  # cached positions attention reads: max over rows of position + 1
    mask: torch.Tensor | None  # (bsz, 1, seqlen, kv_len) True where a query may attend; None: all of them


def _no_init(x: torch.Tensor) -> torch.Tensor:
    # Weights come from the checkpoint; initialising them would only cost time.
    return x


class Attention(nn.Module):
    """Multi-head attention with grouped-query heads and a KV cache of max_batch_size slots."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        mp = fs_init.get_model_parallel_world_size()
        self.n_local_heads = args.n_heads // mp
        self.n_local_kv_heads = args.kv_heads // mp
        self.head_dim = args.head_dim
        self.wq = ColumnParallelLinear(
            args.dim, args.n_heads * self.head_dim, bias=False, gather_output=False, init_method=_no_init
        )
        self.wk = ColumnParallelLinear(
            args.dim, args.kv_heads * self.head_dim, bias=False, gather_output=False, init_method=_no_init
        )
        self.wv = ColumnParallelLinear(
            args.dim, args.kv_heads * self.head_dim, bias=False, gather_output=False, init_method=_no_init
        )
        self.wo = RowParallelLinear(
            args.n_heads * self.head_dim, args.dim, bias=False, input_is_parallel=True, init_method=_no_init
        )
        self.cache_k: torch.Tensor | None = None  # (slots, kv_heads, max_seq_len, head_dim)
        self.cache_v: torch.Tensor | None = None

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank's query, key and value projections (model_svc.packing fuses them)."""
        return self.wq(x), self.wk(x), self.wv(x)

    def forward(
        self,
        x: torch.Tensor,
        freqs_cis: torch.Tensor,
        place: Placement | None,
    ) -> torch.Tensor:
        """x: (bsz, seqlen, dim) at the cache coordinates of place; None: no cache, causal (training)."""
        bsz, seqlen, _ = x.shape
        xq, xk, xv = self.qkv(x)
        xq = xq.view(bsz, seqlen, self.n_local_heads, self.head_dim)
        xk = xk.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)
        xv = xv.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, freqs_cis)
        gqa = self.n_local_kv_heads != self.n_local_heads
        if place is None:
            out = F.scaled_dot_product_attention(
                xq.transpose(1, 2), xk.transpose(1, 2), xv.transpose(1, 2), is_causal=True, enable_gqa=gqa
            )
            return self.wo(out.transpose(1, 2).reshape(bsz, seqlen, -1))
        assert self.cache_k is not None and self.cache_v is not None, "call setup_caches first"

        # Indexed (slots, :, positions) the cache takes (bsz, seqlen, kv_heads, head_dim) values.
        self.cache_k[place.rows, :, place.positions] = xk
        self.cache_v[place.rows, :, place.positions] = xv
        first, kv_len = place.first_slot, place.kv_len
        keys = self.cache_k[first : first + bsz, :, :kv_len]  # (bsz, kv_heads, kv_len, head_dim)
        values = self.cache_v[first : first + bsz, :, :kv_len]

        out = F.scaled_dot_product_attention(
            xq.transpose(1, 2),  # (bsz, n_heads, seqlen, head_dim)
            keys,
            values,
            attn_mask=place.mask,  # (bsz, 1, seqlen, kv_len)
            enable_gqa=gqa,
        )
        return self.wo(out.transpose(1, 2).reshape(bsz, seqlen, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w1 = ColumnParallelLinear(dim, hidden_dim, bias=False, gather_output=False, init_method=_no_init)
        self.w2 = RowParallelLinear(hidden_dim, dim, bias=False, input_is_parallel=True, init_method=_no_init)
        self.w3 = ColumnParallelLinear(dim, hidden_dim, bias=False, gather_output=False, init_method=_no_init)

    def gate_up(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's w1 x and w3 x (model_svc.packing fuses them)."""
        return self.w1(x), self.w3(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x)
        return self.w2(F.silu(gate) * up)


class TransformerBlock(nn.Module):
    """Pre-norm attention and feed-forward with residual connections."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.hidden_dim)
        self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        freqs_cis: torch.Tensor,
        place: Placement | None,
    ) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), freqs_cis, place)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    """Llama-2: embeddings, n_layers blocks, a final norm and the output projection."""

    def __init__(self, params: ModelArgs) -> None:
        super().__init__()
        self.params = params
        self.tok_embeddings = ParallelEmbedding(params.vocab_size, params.dim, init_method=_no_init)
        self.layers = nn.ModuleList(TransformerBlock(params) for _ in range(params.n_layers))
        self.norm = RMSNorm(params.dim, eps=params.norm_eps)
        self.output = ColumnParallelLinear(
            params.dim, params.vocab_size, bias=False, gather_output=True, init_method=_no_init
        )
        self.freqs_cis: torch.Tensor | None = None  # (max_seq_len, head_dim // 2), set by setup_caches

    def setup_caches(self, device: torch.device, dtype: torch.dtype) -> None:
        """Allocate the KV cache (max_batch_size slots of max_seq_len) and the rotary table."""
        p = self.params
        self.freqs_cis = precompute_freqs_cis(p.head_dim, p.max_seq_len, p.rope_theta).to(device)
        for layer in self.layers:
            attn = layer.attention
            shape = (p.max_batch_size, attn.n_local_kv_heads, p.max_seq_len, p.head_dim)
            attn.cache_k = torch.zeros(shape, device=device, dtype=dtype)
            attn.cache_v = torch.zeros(shape, device=device, dtype=dtype)

    def move_slot(self, src: int, dst: int, length: int) -> None:
        """Copy the first `length` cached positions of slot src into slot dst."""
        for layer in self.layers:
            attn = layer.attention
            attn.cache_k[dst, :, :length] = attn.cache_k[src, :, :length]
            attn.cache_v[dst, :, :length] = attn.cache_v[src, :, :length]

    @torch.inference_mode()
    def forward(
        self,
        tokens: torch.Tensor,
        start_pos: int | Sequence[int],
        first_slot: int = 0,
        logits_at: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Run tokens (bsz, seqlen) placed at start_pos (one int, or one per row) in slots first_slot...

        Returns float32 logits (bsz, seqlen, vocab), or (bsz, vocab) at the per-row indices logits_at.
        Padding after a row's real tokens is harmless: its cache entries lie beyond the row's
        position and are overwritten before any real query can attend to them.
        """
        assert self.freqs_cis is not None, "call setup_caches first"
        bsz, seqlen = tokens.shape
        device = tokens.device
        max_pos = self.params.max_seq_len - 1
        starts = [start_pos] * bsz if isinstance(start_pos, int) else list(start_pos)
        start = torch.tensor(starts, device=device)
        # Padding may run past max_seq_len; clamped, it only rewrites a position not yet in use.
        positions = (start[:, None] + torch.arange(seqlen, device=device)).clamp_(max=max_pos)  # (bsz, seqlen)
        rows = torch.arange(first_slot, first_slot + bsz, device=device)[:, None].expand(bsz, seqlen)
        kv_len = min(max(starts) + seqlen, self.params.max_seq_len)
        # Row r's query at position p sees the cached keys 0..p of its own slot.
        mask = None
        if bsz > 1 or seqlen > 1:  # one row decoding attends to every cached key: no mask to build
            mask = (torch.arange(kv_len, device=device) <= positions[:, :, None]).unsqueeze(1)
        place = Placement(first_slot, rows, positions, kv_len, mask)

        h = self.tok_embeddings(tokens)  # (bsz, seqlen, dim)
        freqs_cis = self.freqs_cis[positions]  # (bsz, seqlen, head_dim // 2)
        for layer in self.layers:
            h = layer(h, freqs_cis, place)
        h = self.norm(h)
        if logits_at is not None:
            h = h[torch.arange(bsz, device=device), torch.tensor(list(logits_at), device=device)]
        return self.output(h).float()

    def forward_train(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (bsz, seqlen, vocab) for whole sequences from position 0, without the KV cache."""
        assert self.freqs_cis is not None, "call setup_caches first"
        h = self.tok_embeddings(tokens)
        freqs_cis = self.freqs_cis[: tokens.shape[1]].expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            h = layer(h, freqs_cis, None)
        return self.output(self.norm(h)).float()
