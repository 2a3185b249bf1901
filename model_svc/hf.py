"""Meta-layout weights as transformers' LlamaForCausalLM: the reference the tests and benchmarks use.

The mapping follows transformers' convert_llama_weights_to_hf.py: wq and wk are permuted from
Meta's interleaved rotary pairs to the half-split layout of transformers' rotate_half.
"""

from __future__ import annotations

from typing import Any

import torch

from model_svc.model import ModelArgs


def _permute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    dim1, dim2 = w.shape
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def to_hf_state_dict(state: dict[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    """Rename and permute a full Meta state dict into LlamaForCausalLM's."""
    out = {
        "model.embed_tokens.weight": state["tok_embeddings.weight"],
        "model.norm.weight": state["norm.weight"],
        "lm_head.weight": state["output.weight"],
    }
    for i in range(args.n_layers):
        m, h = f"layers.{i}.", f"model.layers.{i}."
        out |= {
            h + "self_attn.q_proj.weight": _permute(state[m + "attention.wq.weight"], args.n_heads),
            h + "self_attn.k_proj.weight": _permute(state[m + "attention.wk.weight"], args.kv_heads),
            h + "self_attn.v_proj.weight": state[m + "attention.wv.weight"],
            h + "self_attn.o_proj.weight": state[m + "attention.wo.weight"],
            h + "mlp.gate_proj.weight": state[m + "feed_forward.w1.weight"],
            h + "mlp.down_proj.weight": state[m + "feed_forward.w2.weight"],
            h + "mlp.up_proj.weight": state[m + "feed_forward.w3.weight"],
            h + "input_layernorm.weight": state[m + "attention_norm.weight"],
            h + "post_attention_layernorm.weight": state[m + "ffn_norm.weight"],
        }
    return out


def hf_model(state: dict[str, torch.Tensor], args: ModelArgs, dtype: torch.dtype = torch.float32) -> Any:
    """A transformers LlamaForCausalLM holding these weights (transformers is imported here only)."""
    from transformers import LlamaConfig, LlamaForCausalLM  # noqa: PLC0415 (a test and benchmark dependency)

    config = LlamaConfig(
        vocab_size=args.vocab_size,
        hidden_size=args.dim,
        intermediate_size=args.hidden_dim,
        num_hidden_layers=args.n_layers,
        num_attention_heads=args.n_heads,
        num_key_value_heads=args.kv_heads,
        rms_norm_eps=args.norm_eps,
        rope_theta=args.rope_theta,
        max_position_embeddings=args.max_seq_len,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config)
    model.load_state_dict(to_hf_state_dict(state, args), strict=True)
    return model.to(dtype).eval()
