"""The engines a user would pick instead, on the same weights: transformers, the seed's static
batch, llama.cpp (llama-cpp-python on an f32 GGUF); and the machine's bandwidth bound."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import timeit
from model_svc.generation import generate
from model_svc.model import ModelArgs, Transformer
from tokenizer_svc.train import train_tokenizer


def bench_tokenizer(vocab_size: int = 32000, seed: int = 0) -> bytes:
    """A Llama-2-style tokenizer with the models' 32000-token vocabulary, trained on made-up words."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["th", "sh", "ch", "qu", "ng", "st", "tr"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(60000)]
    lines = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(120000)]
    return train_tokenizer(lines, vocab_size)


def matvec_bandwidth(rows: int = 8192, cols: int = 4096, repeat: int = 20) -> dict[str, float]:
    """GB/s of float32 matrix-vector products over a matrix far larger than the caches.

    Two kernels: torch's F.linear, and oneDNN with the matrix prepacked (what the stack runs);
    the machine's bandwidth is the better of the two.
    """
    w = torch.randn(rows, cols)
    x = torch.randn(1, cols)
    packed = torch.ops.mkldnn._reorder_linear_weight(w)
    kernels = {
        "torch_linear": lambda: F.linear(x, w),
        "onednn_packed": lambda: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], ""),
    }
    out = {name: w.numel() * 4 / timeit(fn, repeat, warmup=3) / 1e9 for name, fn in kernels.items()}
    out["best"] = max(out.values())
    return out


def weight_bytes_per_step(args: ModelArgs, bytes_per_param: int = 4) -> int:
    """Weights a decode step must read: every layer, the final norm and the output projection.

    The embedding table is not counted: a step reads one row of it.
    """
    return (args.n_params - args.vocab_size * args.dim) * bytes_per_param


def _timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def hf_decode(hf: object, prompts: Sequence[Sequence[int]], new_tokens: int) -> dict[str, float]:
    """transformers' greedy generate on a batch of equal-length prompts: output tok/s and per-token time."""
    ids = torch.tensor([list(p) for p in prompts])

    def run(n: int) -> None:
        hf.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)

    run(2)  # warm-up
    with torch.inference_mode():
        one = _timed(lambda: run(1))
        full = _timed(lambda: run(new_tokens))
    return {
        "output_tok_s": len(prompts) * new_tokens / full,
        "ms_per_step": (full - one) / (new_tokens - 1) * 1e3,
    }


def static_batches(
    model: Transformer, prompts: Sequence[Sequence[int]], lengths: Sequence[int], batch: int
) -> dict[str, float]:
    """The seed's generate over consecutive batches, each running to its longest request.

    Output tokens counted are the ones the requests asked for: what a static batch computes for a
    row after its own length is waste, exactly the waste continuous batching removes.
    """
    generate(model, [prompts[0]], 2, 0.0, 1.0, False, False, [])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(prompts), batch):
        chunk = list(prompts[i : i + batch])
        generate(model, chunk, max(lengths[i : i + batch]), 0.0, 1.0, False, False, stop_ids=[])
    wall = time.perf_counter() - start
    return {"output_tok_s": sum(lengths) / wall, "wall_s": wall}


def seed_decode(model: Transformer, prompts: Sequence[Sequence[int]], new_tokens: int) -> dict[str, float]:
    """The seed's generate on one batch of equal-length prompts (our model, no server)."""
    generate(model, [prompts[0]], 2, 0.0, 1.0, False, False, [])
    one = _timed(lambda: generate(model, list(prompts), 1, 0.0, 1.0, False, False, []))
    full = _timed(lambda: generate(model, list(prompts), new_tokens, 0.0, 1.0, False, False, []))
    return {"output_tok_s": len(prompts) * new_tokens / full, "ms_per_step": (full - one) / (new_tokens - 1) * 1e3}


# --- llama.cpp -------------------------------------------------------------------------------------

_GGUF_NAMES = {
    "attention.wq": "attn_q",
    "attention.wk": "attn_k",
    "attention.wv": "attn_v",
    "attention.wo": "attn_output",
    "feed_forward.w1": "ffn_gate",
    "feed_forward.w3": "ffn_up",
    "feed_forward.w2": "ffn_down",
    "attention_norm": "attn_norm",
    "ffn_norm": "ffn_norm",
}


def write_gguf(path: Path, state: dict[str, torch.Tensor], args: ModelArgs, tokenizer_proto: bytes) -> None:
    """An f32 GGUF of Meta-layout weights, with the sentencepiece vocabulary, for llama.cpp.

    Meta's wq/wk already pair rotary dimensions the way llama.cpp's LLAMA rope does (it is
    transformers' layout that needs permuting), so the tensors go in as they are.
    """
    import gguf
    from sentencepiece import SentencePieceProcessor

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("llama-grpc-bench")
    w.add_context_length(args.max_seq_len)
    w.add_embedding_length(args.dim)
    w.add_block_count(args.n_layers)
    w.add_feed_forward_length(args.hidden_dim)
    w.add_rope_dimension_count(args.head_dim)
    w.add_head_count(args.n_heads)
    w.add_head_count_kv(args.kv_heads)
    w.add_layer_norm_rms_eps(args.norm_eps)
    w.add_rope_freq_base(args.rope_theta)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_vocab_size(args.vocab_size)

    sp = SentencePieceProcessor()
    sp.LoadFromSerializedProto(tokenizer_proto)
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i).encode("utf-8"))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    def put(name: str, t: torch.Tensor) -> None:
        w.add_tensor(name, t.detach().float().contiguous().numpy().astype(np.float32))

    put("token_embd.weight", state["tok_embeddings.weight"])
    for i in range(args.n_layers):
        for meta, name in _GGUF_NAMES.items():
            put(f"blk.{i}.{name}.weight", state[f"layers.{i}.{meta}.weight"])
    put("output_norm.weight", state["norm.weight"])
    put("output.weight", state["output.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llamacpp_model(path: Path, n_ctx: int, threads: int) -> object:
    """A llama-cpp-python model on the GGUF (CPU, float32)."""
    from llama_cpp import Llama

    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=512,
        verbose=False,
        seed=0,
    )


def llamacpp_greedy(llm: object, prompt: Sequence[int], new_tokens: int) -> list[int]:
    """llama.cpp's greedy continuation of prompt (its own sampler chain with temperature 0)."""
    out: list[int] = []
    for token in llm.generate(list(prompt), temp=0.0, repeat_penalty=1.0, reset=True):
        out.append(token)
        if len(out) == new_tokens:
            break
    return out


def llamacpp_decode(llm: object, prompt: Sequence[int], new_tokens: int) -> dict[str, float]:
    """llama.cpp batch-1 greedy decode through llama-cpp-python: output tok/s and per-token time."""
    llamacpp_greedy(llm, prompt, 2)
    one = _timed(lambda: llamacpp_greedy(llm, prompt, 1))
    full = _timed(lambda: llamacpp_greedy(llm, prompt, new_tokens))
    return {"output_tok_s": new_tokens / full, "ms_per_step": (full - one) / (new_tokens - 1) * 1e3}
