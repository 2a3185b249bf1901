"""The seed's sampling and static-batch `generate`, with per-row generators and none of its bugs."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llama_grpc.errors import InvalidArgument
from model_svc.model import Transformer


class Finish(enum.Enum):
    """Why a row stopped (the proto's FinishReason, without its zero value)."""

    EOS = "eos"
    LENGTH = "length"
    STOP = "stop"
    CANCELLED = "cancelled"


class GenerationError(InvalidArgument):
    """An argument to generate that the seed would have caught with an assert."""


@dataclass
class GenerationResult:
    """One row's output: tokens (after the prompt's, with echo), their logprobs, and why it stopped."""

    tokens: list[int]
    logprobs: list[float] | None
    finish: Finish


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator, seeded when a seed is given and from the OS's entropy otherwise."""
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed % 2**64)
    return gen


def _nucleus_draw(
    probs_sort: torch.Tensor, probs_idx: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """The seed's nucleus over probabilities sorted high to low; u: one uniform per row."""
    probs_sum = torch.cumsum(probs_sort, dim=-1)
    mask = probs_sum - probs_sort > top_p[:, None]
    probs_sort = probs_sort.masked_fill(mask, 0.0)
    probs_sort.div_(probs_sort.sum(dim=-1, keepdim=True))
    cdf = torch.cumsum(probs_sort, dim=-1)
    pick = torch.searchsorted(cdf, u[:, None], right=True)  # (bsz, 1)
    # Float rounding can leave the CDF's end a hair under u: fall back to the nucleus's last token.
    nucleus = (~mask).sum(dim=-1, keepdim=True)
    pick = torch.minimum(pick, nucleus - 1)
    return torch.gather(probs_idx, -1, pick).squeeze(-1)


def sample_top_p(
    probs: torch.Tensor, top_p: torch.Tensor, generators: Sequence[torch.Generator], top_k: int = 256
) -> torch.Tensor:
    """Nucleus sampling, one draw per row from its own generator: (bsz, vocab) → (bsz,) token ids.

    As the seed: keep the most probable tokens while the mass before each is ≤ top_p, renormalise,
    draw. The draw inverts the nucleus's CDF with one uniform from the row's generator, so a row's
    tokens depend on its seed alone, never on the rows beside it. Sorting the whole vocabulary
    costs ~1 ms a row; the nucleus nearly always lies within the top_k most probable tokens
    (it does whenever they hold more than top_p of the mass), so only those are sorted, and rows
    where it does not get the full sort.
    """
    u = torch.stack([torch.rand((), generator=g) for g in generators]).to(probs.device)
    k = min(top_k, probs.shape[-1])
    vals, idx = torch.topk(probs, k, dim=-1)  # sorted, high to low
    inside = vals[:, : k - 1].sum(dim=-1) > top_p  # the nucleus ends before the k-th token
    out = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    rows = inside.nonzero().flatten()
    if len(rows):
        out[rows] = _nucleus_draw(vals[rows], idx[rows], top_p[rows], u[rows])
    rest = (~inside).nonzero().flatten()
    if len(rest):
        full_sort, full_idx = torch.sort(probs[rest], dim=-1, descending=True)
        out[rest] = _nucleus_draw(full_sort, full_idx, top_p[rest], u[rest])
    return out


def sample(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """Next tokens for logits (bsz, vocab): argmax where temperature is 0, nucleus sampling elsewhere."""
    next_tokens = torch.argmax(logits, dim=-1)
    hot = (temperature > 0).nonzero().flatten().tolist()
    if hot:
        idx = torch.tensor(hot, device=logits.device)
        probs = torch.softmax(logits[idx] / temperature[idx, None], dim=-1)
        next_tokens[idx] = sample_top_p(probs, top_p[idx], [generators[i] for i in hot])
    return next_tokens


def check_generate_args(
    prompt_tokens: Sequence[Sequence[int]],
    max_gen_len: int,
    temperature: float,
    top_p: float,
    max_seq_len: int,
    max_batch_size: int,
    vocab_size: int,
) -> None:
    """Raise GenerationError naming the argument and its limit, where the seed asserted."""
    bsz = len(prompt_tokens)
    if not 1 <= bsz <= max_batch_size:
        raise GenerationError(f"prompt_tokens: {bsz} prompts, must be 1 to max_batch_size {max_batch_size}")
    for i, t in enumerate(prompt_tokens):
        if not t:
            raise GenerationError(f"prompt_tokens[{i}] is empty")
        if len(t) >= max_seq_len:
            raise GenerationError(
                f"prompt_tokens[{i}] has {len(t)} tokens, must be fewer than max_seq_len {max_seq_len}"
            )
        bad = next((x for x in t if not 0 <= x < vocab_size), None)
        if bad is not None:
            raise GenerationError(f"prompt_tokens[{i}] holds token id {bad}, outside the vocabulary [0, {vocab_size})")
    if max_gen_len <= 0:
        raise GenerationError(f"max_gen_len must be > 0, got {max_gen_len}")
    if not temperature >= 0 or temperature == float("inf"):
        raise GenerationError(f"temperature must be finite and >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise GenerationError(f"top_p must be in (0, 1], got {top_p}")


@torch.inference_mode()
def generate(
    model: Transformer,
    prompt_tokens: Sequence[Sequence[int]],
    max_gen_len: int,
    temperature: float,
    top_p: float,
    logprobs: bool,
    echo: bool,
    stop_ids: Sequence[int],
    seeds: Sequence[int | None] | None = None,
) -> list[GenerationResult]:
    """The seed's static-batch generate: all rows step together from the shortest prompt's end.

    A row stops at the first of stop_ids it generates (cut from the output), after max_gen_len
    tokens, or at max_seq_len (total_len = min(max_seq_len, max_gen_len + max_prompt_len)).
    Logprobs are log-softmax of the model's logits at the chosen tokens (prompt tokens too with
    echo; the first token has none and gets 0, as in Meta's code).
    """
    params = model.params
    check_generate_args(
        prompt_tokens,
        max_gen_len,
        temperature,
        top_p,
        params.max_seq_len,
        params.max_batch_size,
        params.vocab_size,
    )
    bsz = len(prompt_tokens)
    device = model.freqs_cis.device if model.freqs_cis is not None else torch.device("cpu")
    generators = [make_generator(None if seeds is None else seeds[i]) for i in range(bsz)]
    min_prompt_len = min(len(t) for t in prompt_tokens)
    max_prompt_len = max(len(t) for t in prompt_tokens)
    total_len = min(params.max_seq_len, max_gen_len + max_prompt_len)

    pad_id = -1
    tokens = torch.full((bsz, total_len), pad_id, dtype=torch.long, device=device)
    for k, t in enumerate(prompt_tokens):
        tokens[k, : len(t)] = torch.tensor(list(t), dtype=torch.long, device=device)
    token_logprobs = torch.zeros_like(tokens, dtype=torch.float)
    input_text_mask = tokens != pad_id
    stop = torch.tensor(list(stop_ids), dtype=torch.long, device=device)
    stopped = torch.zeros(bsz, dtype=torch.bool, device=device)
    temps = torch.full((bsz,), float(temperature), device=device)
    top_ps = torch.full((bsz,), float(top_p), device=device)

    prev_pos = 0
    for cur_pos in range(min_prompt_len, total_len):
        logits = model.forward(tokens[:, prev_pos:cur_pos], prev_pos)  # (bsz, cur_pos - prev_pos, vocab)
        # Rows still inside their prompt take the prompt's token and draw nothing from their
        # generator, so a seeded row's tokens do not depend on the other prompts' lengths.
        next_token = tokens[:, cur_pos].clone()
        free = (~input_text_mask[:, cur_pos]).nonzero().flatten().tolist()
        if free:
            next_token[free] = sample(logits[free, -1], temps[free], top_ps[free], [generators[i] for i in free])
        tokens[:, cur_pos] = next_token
        if logprobs:
            token_logprobs[:, prev_pos + 1 : cur_pos + 1] = -F.cross_entropy(
                logits.transpose(1, 2),
                tokens[:, prev_pos + 1 : cur_pos + 1],
                reduction="none",
                ignore_index=pad_id,
            )
        stopped |= ~input_text_mask[:, cur_pos] & torch.isin(next_token, stop)
        prev_pos = cur_pos
        if bool(stopped.all()):
            break

    results = []
    all_logprobs = token_logprobs.tolist()
    for i, toks in enumerate(tokens.tolist()):
        plen = len(prompt_tokens[i])
        end = min(plen + max_gen_len, total_len)
        gen = toks[plen:end]
        finish = Finish.LENGTH
        # Only generated tokens can stop a row: an echoed chat prompt contains EOS ids of its own.
        cut = next((j for j, t in enumerate(gen) if t in stop_ids), None)
        if cut is not None:
            gen, finish = gen[:cut], Finish.EOS
        start = 0 if echo else plen
        out = toks[start:plen] + gen
        lp = all_logprobs[i][start : plen + len(gen)] if logprobs else None
        results.append(GenerationResult(out, lp, finish))
    return results
