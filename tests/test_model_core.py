"""The model core against transformers' LlamaForCausalLM and the seed's semantics (issue: model core)."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import torch

from model_svc.generation import Finish, GenerationError, generate, make_generator, sample, sample_top_p
from model_svc.hf import hf_model
from tests.conftest import GQA, MHA, ROOT, VOCAB, load

CONFIGS = {"mha": MHA, "gqa": GQA}


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest absolute difference relative to the reference's largest magnitude."""
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def random_prompts(n: int, lo: int, hi: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[1] + [rng.randrange(3, VOCAB) for _ in range(rng.randint(lo, hi) - 1)] for _ in range(n)]


@pytest.fixture(scope="module", params=["mha", "gqa"])
def case(request: pytest.FixtureRequest, dist_ctx, mha_ckpt, gqa_ckpt):
    """(name, our model, transformers model, ModelArgs, ckpt dirs) for each config."""
    args = CONFIGS[request.param]
    one, two, state = mha_ckpt if request.param == "mha" else gqa_ckpt
    model = load(one, args)
    return request.param, model, hf_model(state, model.params), args, (one, two)


def test_logits_match_transformers(case) -> None:
    _, model, hf, _, _ = case
    tokens = torch.randint(0, VOCAB, (4, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = hf(tokens).logits
    assert rel_err(model.forward(tokens, 0), ref) <= 1e-5


def test_incremental_and_per_row_positions_match_transformers(case) -> None:
    """Prefill then one token at a time; rows at different positions in one batch."""
    _, model, hf, _, _ = case
    tokens = torch.randint(0, VOCAB, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(tokens).logits
    model.forward(tokens[:, :30], 0)
    for pos in range(30, 40):
        step = model.forward(tokens[:, pos : pos + 1], pos)
        assert rel_err(step[:, 0], ref[:, pos]) <= 1e-5
    # Each row in its own slot at its own position: rows 0..2 continue from 37, 38 and 39.
    starts = [37, 38, 39]
    step = model.forward(torch.stack([tokens[r, s : s + 1] for r, s in enumerate(starts)]), starts)
    assert rel_err(step[:, 0], torch.stack([ref[r, s] for r, s in enumerate(starts)])) <= 1e-5
    # Padded prefill: rows of different lengths, logits read at each row's last real token.
    lens = [12, 25, 7]
    padded = torch.zeros(3, 25, dtype=torch.long)
    for r, n in enumerate(lens):
        padded[r, :n] = tokens[r, :n]
    last = model.forward(padded, 0, logits_at=[n - 1 for n in lens])
    assert rel_err(last, torch.stack([ref[r, n - 1] for r, n in enumerate(lens)])) <= 1e-5


def hf_greedy(hf, prompt: list[int], n: int) -> list[int]:
    out = hf.generate(
        torch.tensor([prompt]),
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )
    return out[0, len(prompt) :].tolist()


def test_greedy_generate_matches_transformers(case) -> None:
    """20 prompts of mixed lengths in one static batch, 32 new tokens, token for token."""
    _, model, hf, _, _ = case
    prompts = random_prompts(20, 3, 40, seed=2)
    results = generate(model, prompts, 32, 0.0, 0.9, False, False, stop_ids=[])
    for prompt, res in zip(prompts, results, strict=True):
        assert res.tokens == hf_greedy(hf, prompt, 32)
        assert res.finish is Finish.LENGTH


def test_model_parallel_2_matches_1(case, tmp_path) -> None:
    """torchrun --nproc_per_node 2 (gloo) on Meta-style shards gives MP=1's logits and greedy tokens."""
    _, model, _, _, (_, two) = case
    tokens = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(3))
    prompts = random_prompts(6, 3, 30, seed=4)
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"tokens": tokens.tolist(), "prompts": prompts, "max_gen_len": 32}))
    out = tmp_path / "out.pt"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(ROOT / "tests" / "mp_worker.py"),
        "--ckpt-dir",
        str(two),
        "--inputs",
        str(inputs),
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(out)
    assert rel_err(got["logits"], model.forward(tokens, 0)) <= 1e-5
    ref = generate(model, prompts, 32, 0.0, 1.0, True, False, [])
    assert got["tokens"] == [r.tokens for r in ref]
    for a, b in zip(got["logprobs"], [r.logprobs for r in ref], strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1e-4


def test_logprobs_are_reference_log_softmax(case) -> None:
    """Generated and (with echo) prompt tokens' logprobs equal log_softmax of the reference's logits."""
    _, model, hf, _, _ = case
    prompts = random_prompts(5, 4, 20, seed=5)
    results = generate(model, prompts, 16, 0.0, 0.9, True, True, stop_ids=[])
    for prompt, res in zip(prompts, results, strict=True):
        assert res.tokens[: len(prompt)] == prompt
        assert len(res.logprobs) == len(res.tokens) == len(prompt) + 16
        seq = torch.tensor([res.tokens])
        with torch.no_grad():
            ref = torch.log_softmax(hf(seq).logits[0].double(), dim=-1)
        expect = [0.0] + [ref[i - 1, t].item() for i, t in enumerate(res.tokens) if i > 0]
        assert max(abs(a - b) for a, b in zip(res.logprobs, expect, strict=True)) <= 1e-4
    sampled = generate(model, prompts, 16, 0.8, 0.9, True, False, stop_ids=[], seeds=[7] * 5)
    for prompt, res in zip(prompts, sampled, strict=True):
        seq = torch.tensor([prompt + res.tokens])
        with torch.no_grad():
            ref = torch.log_softmax(hf(seq).logits[0].double(), dim=-1)
        expect = [ref[len(prompt) + i - 1, t].item() for i, t in enumerate(res.tokens)]
        assert max(abs(a - b) for a, b in zip(res.logprobs, expect, strict=True)) <= 1e-4


def test_stop_ids_cut_the_output(case) -> None:
    """A row ends at the first stop id it generates, which is not returned; others run on."""
    _, model, _, _, _ = case
    prompts = random_prompts(4, 5, 15, seed=6)
    free = generate(model, prompts, 24, 0.0, 0.9, True, False, stop_ids=[])
    stop = free[0].tokens[5]  # a token row 0 generates at step 5
    results = generate(model, prompts, 24, 0.0, 0.9, True, False, stop_ids=[stop])
    for f, r in zip(free, results, strict=True):
        if stop in f.tokens:
            cut = f.tokens.index(stop)
            assert r.tokens == f.tokens[:cut] and r.logprobs == f.logprobs[:cut]
            assert r.finish is Finish.EOS
        else:
            assert r.tokens == f.tokens and r.finish is Finish.LENGTH
    assert results[0].finish is Finish.EOS and len(results[0].tokens) <= 5
    # A stop id inside an echoed prompt does not stop the row: only generated tokens can.
    echoed = generate(model, [[1, stop, 5, 6]], 4, 0.0, 0.9, False, True, stop_ids=[stop])
    assert echoed[0].tokens[:4] == [1, stop, 5, 6]


def test_max_gen_len_and_max_seq_len(case) -> None:
    """total_len = min(max_seq_len, max_gen_len + max_prompt_len), per row as the seed cuts it."""
    _, model, _, args, _ = case
    short, long_ = random_prompts(1, 10, 10, 7)[0], random_prompts(1, 120, 120, 8)[0]
    res = generate(model, [short, long_], 20, 0.0, 0.9, False, False, stop_ids=[])
    assert len(res[0].tokens) == 20  # max_gen_len
    assert len(res[1].tokens) == args.max_seq_len - 120  # clipped by max_seq_len
    assert res[0].finish is res[1].finish is Finish.LENGTH
    one = generate(model, [short], 1, 0.0, 0.9, False, True, stop_ids=[])
    assert len(one[0].tokens) == len(short) + 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt_tokens": []}, "1 to max_batch_size"),
        ({"prompt_tokens": [[1]] * 33}, "1 to max_batch_size 32"),
        ({"prompt_tokens": [[1], []]}, "prompt_tokens[1] is empty"),
        ({"prompt_tokens": [[1] * 128]}, "fewer than max_seq_len 128"),
        ({"prompt_tokens": [[1, VOCAB]]}, "outside the vocabulary [0, 1000)"),
        ({"prompt_tokens": [[1, -3]]}, "token id -3"),
        ({"max_gen_len": 0}, "max_gen_len must be > 0"),
        ({"temperature": -0.1}, "temperature must be finite and >= 0"),
        ({"temperature": float("nan")}, "temperature must be finite"),
        ({"temperature": float("inf")}, "temperature must be finite"),
        ({"top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"top_p": 1.5}, "top_p must be in (0, 1]"),
    ],
)
def test_bad_generate_arguments(case, kwargs: dict, message: str) -> None:
    _, model, _, _, _ = case
    call = {"prompt_tokens": [[1, 2, 3]], "max_gen_len": 4, "temperature": 0.0, "top_p": 0.9} | kwargs
    with pytest.raises(GenerationError, match=None) as err:
        generate(
            model, call["prompt_tokens"], call["max_gen_len"], call["temperature"], call["top_p"], False, False, []
        )
    assert message in str(err.value)


def test_seeded_sampling_is_reproducible_and_batch_independent(case) -> None:
    _, model, _, _, _ = case
    prompts = random_prompts(3, 5, 12, seed=9)
    a = generate(model, prompts, 16, 1.0, 0.95, False, False, [], seeds=[11, 12, 13])
    b = generate(model, prompts, 16, 1.0, 0.95, False, False, [], seeds=[11, 12, 13])
    alone = generate(model, prompts[1:2], 16, 1.0, 0.95, False, False, [], seeds=[12])
    assert [r.tokens for r in a] == [r.tokens for r in b]
    assert a[1].tokens == alone[0].tokens
    other = generate(model, prompts, 16, 1.0, 0.95, False, False, [], seeds=[99, 98, 97])
    assert [r.tokens for r in other] != [r.tokens for r in a]


# --- sample_top_p ---------------------------------------------------------------------------------

NUCLEUS_PROBS = [0.40, 0.25, 0.15, 0.10, 0.05, 0.03, 0.02]


def shuffled_probs(perm_seed: int = 0) -> tuple[torch.Tensor, list[int]]:
    """NUCLEUS_PROBS over a 7-token vocabulary in shuffled order, and the ids by falling probability."""
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(perm_seed)).tolist()
    probs = torch.zeros(7)
    for rank, tok in enumerate(perm):
        probs[tok] = NUCLEUS_PROBS[rank]
    return probs, perm


def test_top_p_never_leaves_the_nucleus_and_follows_it() -> None:
    """top_p 0.85 keeps 4 tokens (0.40 .25 .15 .10: mass before each ≤ 0.85); draws follow 0.9-renormalised."""
    probs, order = shuffled_probs()
    n = 20000
    gens = [make_generator(s) for s in range(n)]
    draws = sample_top_p(probs.expand(n, 7).clone(), torch.full((n,), 0.85), gens).tolist()
    counts = [draws.count(t) for t in order]
    assert sum(counts[4:]) == 0, f"tokens outside the nucleus were drawn: {counts}"
    expected = [n * p / 0.9 for p in NUCLEUS_PROBS[:4]]
    chi2 = sum((c - e) ** 2 / e for c, e in zip(counts[:4], expected, strict=True))
    assert chi2 < 16.27, f"chi-square {chi2:.1f} over 3 degrees of freedom (p < 0.001): counts {counts[:4]}"


def test_top_p_small_keeps_only_the_top_token_and_wrong_sampler_is_caught() -> None:
    probs, order = shuffled_probs(1)
    gens = [make_generator(s) for s in range(500)]
    draws = sample_top_p(probs.expand(500, 7).clone(), torch.full((500,), 0.1), gens).tolist()
    assert set(draws) == {order[0]}
    # The same chi-square rejects plain (un-truncated) sampling, so the test above can fail.
    n = 20000
    plain = torch.multinomial(probs, n, replacement=True, generator=torch.Generator().manual_seed(0)).tolist()
    counts = [plain.count(t) for t in order[:4]]
    expected = [n * p / 0.9 for p in NUCLEUS_PROBS[:4]]
    assert sum((c - e) ** 2 / e for c, e in zip(counts, expected, strict=True)) > 16.27


def test_same_seed_same_tokens_whatever_the_batch() -> None:
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0))
    temps, top_ps = torch.tensor([1.0, 0.0, 0.7, 1.0, 1.3, 0.5]), torch.full((6,), 0.9)
    first = sample(logits, temps, top_ps, [make_generator(s) for s in range(6)])
    again = sample(logits, temps, top_ps, [make_generator(s) for s in range(6)])
    alone = sample(logits[3:4], temps[3:4], top_ps[3:4], [make_generator(3)])
    assert first.tolist() == again.tolist() and first[3] == alone[0]
    assert first[1] == logits[1].argmax()


def test_top_p_beyond_the_top_k_falls_back_to_the_full_sort() -> None:
    """A flat distribution whose nucleus is larger than the top 256 tokens: same rule, full sort."""
    gen = torch.Generator().manual_seed(0)
    ramp = torch.linspace(1.0, 2.0, 2000)[torch.randperm(2000, generator=gen)]
    probs = ramp / ramp.sum()
    order = torch.argsort(probs, descending=True)
    csum = torch.cumsum(probs[order], 0)
    nucleus = set(order[(csum - probs[order]) <= 0.6].tolist())
    assert len(nucleus) > 256
    n = 4000
    draws = sample_top_p(probs.expand(n, -1).clone(), torch.full((n,), 0.6), [make_generator(s) for s in range(n)])
    assert set(draws.tolist()) <= nucleus
    assert len(set(draws.tolist())) > 500  # it samples the whole nucleus, not a top-k of it
    again = sample_top_p(probs.expand(5, -1).clone(), torch.full((5,), 0.6), [make_generator(s) for s in range(5)])
    assert again.tolist() == draws[:5].tolist()


def test_top_k_shortcut_draws_what_the_full_sort_draws() -> None:
    logits = torch.randn(8, 3000, generator=torch.Generator().manual_seed(1)) * 3
    probs = torch.softmax(logits, -1)
    top_p = torch.full((8,), 0.9)
    fast = sample_top_p(probs, top_p, [make_generator(s) for s in range(8)])
    slow = sample_top_p(probs, top_p, [make_generator(s) for s in range(8)], top_k=3000)
    assert fast.tolist() == slow.tolist()
