"""The model service as a torchrun group behind gRPC (issue: model service)."""

from __future__ import annotations

import concurrent.futures
import random
import re
import signal
import subprocess
import threading
import time

import grpc
import pytest
import torch

from llama.v1 import model_pb2 as pb
from llama.v1 import model_pb2_grpc
from llama.v1 import types_pb2 as types
from llama_grpc.launch import health_status
from model_svc.generation import generate
from model_svc.hf import hf_model
from tests.conftest import MHA, VOCAB, load
from tests.stack import metric, model_service, rank_pids, scrape

SERVICE_ARGS = ("--max-seq-len", "128", "--max-batch-size", "16")


@pytest.fixture(scope="module")
def mp1(mha_ckpt):
    svc = model_service(mha_ckpt[0], 1, *SERVICE_ARGS, name="model-mp1")
    yield svc
    svc.stop()  # torchrun itself exits 1 on SIGTERM (its SignalException); the drain tests check the ranks


@pytest.fixture(scope="module")
def long_rows(slow_ckpt):
    """Room for 64 rows of up to 512 slow tokens: rows that live long enough to be cancelled mid-way."""
    svc = model_service(slow_ckpt[0], 1, "--max-seq-len", "512", "--max-batch-size", "64", name="model-long")
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def mp2(mha_ckpt):
    svc = model_service(mha_ckpt[1], 2, *SERVICE_ARGS, name="model-mp2")
    yield svc
    svc.stop()


def stub_for(svc) -> model_pb2_grpc.ModelServiceStub:
    return model_pb2_grpc.ModelServiceStub(grpc.insecure_channel(svc.address))


@pytest.fixture(scope="module")
def core(dist_ctx, mha_ckpt):
    return load(mha_ckpt[0], MHA)


@pytest.fixture(scope="module")
def reference(core, mha_ckpt):
    return hf_model(mha_ckpt[2], core.params)


def prompts(n: int, lo: int, hi: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[1] + [rng.randrange(3, VOCAB) for _ in range(rng.randint(lo, hi) - 1)] for _ in range(n)]


def request(ps: list[list[int]], max_gen_len: int, temperature: float = 0.0, top_p: float = 0.9, **kw) -> dict:
    return dict(
        prompt_tokens=[types.TokenIds(ids=p) for p in ps],
        max_gen_len=max_gen_len,
        temperature=temperature,
        top_p=top_p,
        **kw,
    )


def tokens_of(resp: pb.GenerateResponse) -> list[list[int]]:
    return [list(g.tokens) for g in resp.generations]


@pytest.mark.parametrize("group", ["mp1", "mp2"])
def test_generate_equals_core_and_transformers(group, request_fixture, core, reference) -> None:
    svc = request_fixture(group)
    ps = prompts(6, 3, 30, seed=1)
    resp = stub_for(svc).Generate(pb.GenerateRequest(**request(ps, 24, logprobs=True)))
    core_results = generate(core, ps, 24, 0.0, 0.9, True, False, [])
    assert tokens_of(resp) == [r.tokens for r in core_results]
    for p, got in zip(ps, tokens_of(resp), strict=True):
        out = reference.generate(
            torch.tensor([p]), max_new_tokens=24, min_new_tokens=24, do_sample=False, eos_token_id=None, pad_token_id=0
        )
        assert got == out[0, len(p) :].tolist()
    for g, r in zip(resp.generations, core_results, strict=True):
        assert g.finish_reason == types.FINISH_REASON_LENGTH and g.generation_token_count == 24
        assert max(abs(a - b) for a, b in zip(g.logprobs, r.logprobs, strict=True)) <= 1e-4


@pytest.fixture
def request_fixture(request):
    return request.getfixturevalue


def test_echo_and_stop_ids(mp1, core) -> None:
    ps = prompts(3, 4, 12, seed=2)
    free = generate(core, ps, 20, 0.0, 0.9, True, True, [])
    stop = free[0].tokens[len(ps[0]) + 3]
    resp = stub_for(mp1).Generate(pb.GenerateRequest(**request(ps, 20, logprobs=True, echo=True, stop_ids=[stop])))
    ref = generate(core, ps, 20, 0.0, 0.9, True, True, [stop])
    for g, r in zip(resp.generations, ref, strict=True):
        assert list(g.tokens) == r.tokens
        assert max(abs(a - b) for a, b in zip(g.logprobs, r.logprobs, strict=True)) <= 1e-4
        assert g.finish_reason == (types.FINISH_REASON_EOS if r.finish.value == "eos" else types.FINISH_REASON_LENGTH)
    assert resp.generations[0].finish_reason == types.FINISH_REASON_EOS


def test_sixteen_concurrent_requests_match_each_alone(mp1) -> None:
    """Different prompt and output lengths; greedy and seeded sampling give the same tokens alone and together."""
    stub = stub_for(mp1)
    ps = prompts(16, 2, 60, seed=3)
    rng = random.Random(4)
    lens = [rng.randint(4, 60) for _ in ps]
    cases = [
        ("greedy", lambda i: request([ps[i]], lens[i])),
        ("sampled", lambda i: request([ps[i]], lens[i], temperature=0.9, top_p=0.95, seed=1000 + i)),
    ]
    for name, make in cases:
        alone = [tokens_of(stub.Generate(pb.GenerateRequest(**make(i))))[0] for i in range(16)]
        barrier = threading.Barrier(16)

        def together(i: int, make=make, barrier=barrier) -> list[int]:
            barrier.wait()
            return tokens_of(stub.Generate(pb.GenerateRequest(**make(i))))[0]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            joint = list(pool.map(together, range(16)))
        assert joint == alone, name
        assert [len(t) for t in alone] == lens


def test_multi_prompt_request_seeds_each_row(mp1) -> None:
    stub = stub_for(mp1)
    ps = prompts(3, 5, 10, seed=5)
    both = tokens_of(stub.Generate(pb.GenerateRequest(**request(ps, 12, temperature=1.0, seed=7))))
    second = tokens_of(stub.Generate(pb.GenerateRequest(**request(ps[1:2], 12, temperature=1.0, seed=8))))
    assert both[1] == second[0]  # prompt i uses seed + i


def test_stream_events_concatenate_to_generate(mp1) -> None:
    stub = stub_for(mp1)
    ps = prompts(4, 3, 20, seed=6)
    sampled = {"temperature": 0.8, "seed": 3, "logprobs": True}
    for kw, merge in (({}, False), ({"echo": True, "logprobs": True}, False), (sampled, False), (sampled, True)):
        unary = stub.Generate(pb.GenerateRequest(**request(ps, 16, **kw)))
        toks: list[list[int]] = [[] for _ in ps]
        lps: list[list[float]] = [[] for _ in ps]
        finish = [None] * len(ps)
        for ev in stub.StreamGenerate(pb.StreamGenerateRequest(**request(ps, 16, **kw), merge_pending_tokens=merge)):
            assert finish[ev.index] is None, "event after the row finished"
            if not merge and not (kw.get("echo") and not toks[ev.index]):
                assert len(ev.tokens) <= 1, "without merge_pending_tokens, one event per decode step"
            toks[ev.index] += ev.tokens
            lps[ev.index] += ev.logprobs
            if ev.finish_reason:
                finish[ev.index] = ev.finish_reason
        assert toks == tokens_of(unary)
        assert lps == [list(g.logprobs) for g in unary.generations]
        assert finish == [g.finish_reason for g in unary.generations]


def engine_info(svc) -> pb.GetEngineInfoResponse:
    return stub_for(svc).GetEngineInfo(pb.GetEngineInfoRequest())


def scrape_svc(svc) -> str:
    return scrape(f"http://127.0.0.1:{svc.metrics_port}/metrics")


def test_fifty_cancelled_streams_leave_no_rows(long_rows) -> None:
    mp1 = long_rows
    stub = stub_for(mp1)
    ps = prompts(50, 3, 20, seed=7)
    calls = [stub.StreamGenerate(pb.StreamGenerateRequest(**request([p], 480))) for p in ps]
    started = 0
    for call in calls:  # each stream has produced a token: it is running or was running
        next(call)
        started += 1
    info = engine_info(mp1)
    assert info.active_rows == 50
    for call in calls:
        call.cancel()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        info = engine_info(mp1)
        if info.active_rows == 0 and info.queued == 0:
            break
        time.sleep(0.05)
    assert (info.active_rows, info.queued, started) == (0, 0, 50)
    text = scrape_svc(mp1)
    assert metric(text, "llama_engine_active_rows") == 0
    assert metric(text, "llama_engine_queued_requests") == 0
    assert metric(text, 'llama_engine_finished_rows_total{reason="cancelled"}') == 50


def test_deadline_frees_rows(long_rows) -> None:
    mp1 = long_rows
    stub = stub_for(mp1)
    with pytest.raises(grpc.RpcError) as err:
        stub.Generate(pb.GenerateRequest(**request(prompts(1, 5, 5, 8), 500)), timeout=0.15)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 5
    while engine_info(mp1).active_rows and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine_info(mp1).active_rows == 0


BAD = [
    (request([], 8), r"prompt_tokens: 0 prompts, must be 1 to max_batch_size 16"),
    (request([[1]] * 17, 8), r"17 prompts, must be 1 to max_batch_size 16"),
    (request([[1, 2], []], 8), r"prompt_tokens\[1\] is empty"),
    (request([[1] * 128], 8), r"prompt_tokens\[0\] has 128 tokens, must be fewer than max_seq_len 128"),
    (request([[1, VOCAB]], 8), r"prompt_tokens\[0\] holds token id 1000, outside the vocabulary \[0, 1000\)"),
    (request([[1, -5]], 8), r"token id -5"),
    (request([[1]], 0), r"max_gen_len must be > 0, got 0"),
    (request([[1]], -3), r"max_gen_len must be > 0"),
    (request([[1]], 8, temperature=-1.0), r"temperature must be finite and >= 0, got -1"),
    (request([[1]], 8, temperature=float("nan")), r"temperature must be finite"),
    (request([[1]], 8, temperature=float("inf")), r"temperature must be finite"),
    (request([[1]], 8, top_p=0.0), r"top_p must be in \(0, 1\], got 0"),
    (request([[1]], 8, top_p=1.01), r"top_p must be in \(0, 1\]"),
    (request([[1]], 8, stop_ids=[VOCAB]), r"stop_ids holds 1000, outside the vocabulary"),
    (request([[1]], 8, stop_ids=list(range(65))), r"stop_ids: 65 ids, at most 64"),
]


def test_bad_arguments_are_invalid_argument_and_harm_no_one(mp1) -> None:
    stub = stub_for(mp1)
    good_ps = prompts(4, 5, 30, seed=9)
    alone = [tokens_of(stub.Generate(pb.GenerateRequest(**request([p], 40))))[0] for p in good_ps]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        good = [
            pool.submit(lambda p: tokens_of(stub.Generate(pb.GenerateRequest(**request([p], 40))))[0], p)
            for p in good_ps
        ]
        for req, message in BAD:
            for call in (stub.Generate, lambda r: list(stub.StreamGenerate(r))):
                msg = pb.GenerateRequest(**req) if call is stub.Generate else pb.StreamGenerateRequest(**req)
                with pytest.raises(grpc.RpcError) as err:
                    call(msg)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
                assert re.search(message, err.value.details()), err.value.details()
        assert [f.result() for f in good] == alone
    assert health_status(mp1.address) == "SERVING"


def test_queue_full_is_resource_exhausted(slow_ckpt) -> None:
    svc = model_service(
        slow_ckpt[0],
        1,
        "--max-seq-len",
        "512",
        "--max-batch-size",
        "1",
        "--max-queue",
        "2",
        name="model-queue",
        metrics=False,
    )
    try:
        stub = stub_for(svc)
        ps = prompts(3, 5, 5, seed=10)
        running = stub.StreamGenerate(pb.StreamGenerateRequest(**request(ps[:1], 200)))
        next(running)  # occupies the only row for ~3 s
        queued = [stub.Generate.future(pb.GenerateRequest(**request(ps[1:2], 4)))]
        # A request whose deadline passes while it waits leaves the queue without running.
        with pytest.raises(grpc.RpcError) as err:
            stub.Generate(pb.GenerateRequest(**request(ps[:1], 4)), timeout=0.2)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(0.1)
        assert engine_info(svc).queued == 1
        queued.append(stub.Generate.future(pb.GenerateRequest(**request(ps[2:3], 4))))
        time.sleep(0.3)
        with pytest.raises(grpc.RpcError) as err:
            stub.Generate(pb.GenerateRequest(**request(ps[:1], 4)))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue full: 2 requests waiting (--max-queue 2)" in err.value.details()
        rest = list(running)
        assert rest[-1].finish_reason == types.FINISH_REASON_LENGTH
        assert all(len(f.result().generations[0].tokens) == 4 for f in queued)
        assert engine_info(svc).queued == 0
    finally:
        svc.stop()


def test_killing_rank_1_fails_callers_fast_and_reports_not_serving(mha_ckpt) -> None:
    svc = model_service(mha_ckpt[1], 2, *SERVICE_ARGS, "--failure-linger", "5", name="model-kill", metrics=False)
    try:
        stub = stub_for(svc)
        streams = [stub.StreamGenerate(pb.StreamGenerateRequest(**request([p], 120))) for p in prompts(4, 3, 9, 11)]
        for s in streams:
            next(s)
        workers = rank_pids(svc)
        assert len(workers) == 2
        rank1 = workers[1]
        killed = time.monotonic()
        subprocess.run(["kill", "-9", str(rank1)], check=True)
        codes = []
        for s in streams:
            with pytest.raises(grpc.RpcError) as err:
                list(s)
            codes.append(err.value.code())
        elapsed = time.monotonic() - killed
        assert set(codes) == {grpc.StatusCode.UNAVAILABLE} and elapsed < 30
        assert health_status(svc.address) == "NOT_SERVING"
        with pytest.raises(grpc.RpcError) as err:
            stub.Generate(pb.GenerateRequest(**request([[1, 2, 3]], 4)))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert svc.proc.wait(60) != 0  # the group exits non-zero for its supervisor
    finally:
        svc.stop()


def test_sigterm_drains_in_flight_requests_then_exits_0(slow_ckpt) -> None:
    svc = model_service(slow_ckpt[0], 1, *SERVICE_ARGS, name="model-drain", metrics=False)
    stub = stub_for(svc)
    stream = stub.StreamGenerate(pb.StreamGenerateRequest(**request(prompts(1, 5, 5, 12), 100)))  # ~1.5 s
    next(stream)
    rank0 = rank_pids(svc)[0]
    subprocess.run(["kill", "-TERM", str(rank0)], check=True)  # rank 0 leads the group's shutdown
    time.sleep(0.3)
    with pytest.raises(grpc.RpcError) as err:
        stub.Generate(pb.GenerateRequest(**request([[1, 2]], 4)))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in err.value.details()
    rest = list(stream)
    assert rest[-1].finish_reason == types.FINISH_REASON_LENGTH and len(rest) == 99
    assert svc.proc.wait(60) == 0, svc.log()[-3000:]
    svc.stop()


def test_sigterm_to_torchrun_drains_the_group(slow_ckpt) -> None:
    """torchrun forwards SIGTERM to every rank: rank 0 drains, the others wait for its word."""
    svc = model_service(slow_ckpt[1], 2, *SERVICE_ARGS, name="model-drain2", metrics=False)
    stub = stub_for(svc)
    stream = stub.StreamGenerate(pb.StreamGenerateRequest(**request(prompts(1, 5, 5, 13), 60)))
    next(stream)
    svc.signal(signal.SIGTERM)
    rest = list(stream)
    assert rest[-1].finish_reason == types.FINISH_REASON_LENGTH and len(rest) == 59
    svc.proc.wait(60)
    log = svc.log()
    assert "draining" in log and "exitcode  : 1" not in log and "FAILED" not in log, log[-3000:]
    svc.stop()
