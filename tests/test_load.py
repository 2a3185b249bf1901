"""1000 requests at concurrency 32 against a queue smaller than that: nothing lost, memory flat."""

from __future__ import annotations

import collections
import concurrent.futures
import random
import re
import urllib.request

import grpc
import psutil
import pytest

from llama.v1 import gateway_pb2 as pb
from llama.v1 import gateway_pb2_grpc, model_pb2, model_pb2_grpc
from tests.stack import gateway_service, model_service, tokenizer_service

CONCURRENCY = 32
REQUESTS = 1000
WARMUP = 2000  # until each process's heap and gRPC's buffers reach their working size


@pytest.fixture(scope="module")
def stack(tokenizer_path, mha_ckpt):
    """4 rows and a queue of 8: far fewer places than 32 concurrent callers."""
    tok = tokenizer_service(tokenizer_path, metrics=True)
    model = model_service(mha_ckpt[0], 1, "--max-seq-len", "128", "--max-batch-size", "4", "--max-queue", "8")
    gw = gateway_service(tok.address, model.address)
    yield tok, model, gw
    for svc in (gw, model, tok):
        svc.stop()


def counts(url: str, method: str) -> collections.Counter:
    """llama_rpc_requests_total of one method, by status code."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    found = re.findall(
        rf'^llama_rpc_requests_total\{{code="(\w+)",method="{method}",service="\w+"\}} (\S+)$', text, re.M
    )
    return collections.Counter({code: int(float(v)) for code, v in found})


def run(address: str, n: int, seed: int) -> collections.Counter:
    """n TextCompletion calls from CONCURRENCY threads; every call's status code."""
    stub = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(address))
    rng = random.Random(seed)
    lengths = [rng.randint(1, 8) for _ in range(n)]

    def one(i: int) -> str:
        req = pb.TextCompletionRequest(
            prompts=[f"request {i}: the quick brown fox"], max_gen_len=lengths[i], temperature=0
        )
        try:
            resp = stub.TextCompletion(req, timeout=60)
        except grpc.RpcError as e:
            return e.code().name
        assert 0 <= resp.predictions[0].generation_token_count <= lengths[i]
        return "OK"

    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        return collections.Counter(pool.map(one, range(n)))


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def test_every_request_gets_exactly_one_outcome_and_memory_stays_flat(stack) -> None:
    tok, model, gw = stack
    url = {s.name: f"http://127.0.0.1:{s.metrics_port}/metrics" for s in (tok, model, gw)}
    pids = {"tokenizer": tok.proc.pid, "gateway": gw.proc.pid, "model rank 0": model.children()[0]}

    warm = run(gw.address, WARMUP, seed=1)
    assert set(warm) <= {"OK", "RESOURCE_EXHAUSTED"}
    before_rss = {name: rss(pid) for name, pid in pids.items()}
    gw_before, model_before = counts(url["gateway"], "TextCompletion"), counts(url["model"], "StreamGenerate")

    client = run(gw.address, REQUESTS, seed=2)

    after_rss = {name: rss(pid) for name, pid in pids.items()}
    gw_after, model_after = counts(url["gateway"], "TextCompletion"), counts(url["model"], "StreamGenerate")
    gateway_seen = gw_after - gw_before
    model_seen = model_after - model_before
    print(
        f"\n{REQUESTS} requests at concurrency {CONCURRENCY}: client {dict(client)}, gateway {dict(gateway_seen)}, "
        f"model {dict(model_seen)}"
    )
    for name in pids:
        print(
            f"  RSS {name}: {before_rss[name] / 2**20:.1f} MiB -> {after_rss[name] / 2**20:.1f} MiB "
            f"({(after_rss[name] / before_rss[name] - 1) * 100:+.1f}%)"
        )

    assert sum(client.values()) == REQUESTS
    assert set(client) == {"OK", "RESOURCE_EXHAUSTED"}, client  # the queue overflowed, and some got through
    assert gateway_seen == client  # the gateway counted each request once, with the client's outcome
    assert model_seen == client  # one model stream per request, same outcome
    info = model_pb2_grpc.ModelServiceStub(grpc.insecure_channel(model.address)).GetEngineInfo(
        model_pb2.GetEngineInfoRequest()
    )
    assert (info.active_rows, info.queued) == (0, 0)  # nothing left hanging
    for name in pids:
        assert after_rss[name] < before_rss[name] * 1.05, name
