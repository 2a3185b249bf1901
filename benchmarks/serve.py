"""A serving load generator with vLLM benchmark_serving's metrics.

    python -m benchmarks.serve --target gateway --addr localhost:50051 --num-requests 64 --concurrency 16
    python -m benchmarks.serve --target model --addr localhost:50053 --tokenizer tokenizer.model --rate 4

Sends --num-requests streaming requests at a fixed concurrency, or arriving as a Poisson process
of --rate requests/s; prompt lengths are fixed and output lengths fixed or exponential
(--output-dist), with EOS ignored so each request generates exactly its length. `--target gateway`
calls StreamTextCompletion with text; `--target model` calls the model service's StreamGenerate
with the same prompts' token ids (to measure what the gateway adds). Prints TTFT, TPOT, ITL and
end-to-end latency (mean, p50, p90, p99), requests/s and output tokens/s; --json writes them.
Definitions as vLLM's: TTFT = first token received − request sent; TPOT = (latency − TTFT) /
(output tokens − 1); ITL = every gap between consecutive tokens of a request.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from llama.v1 import gateway_pb2, gateway_pb2_grpc, model_pb2, model_pb2_grpc
from llama.v1 import types_pb2 as types
from tokenizer_svc.tokenizer import Tokenizer


@dataclass
class Request:
    """One benchmark request: its prompt as text and as token ids, and how many tokens to generate."""

    text: str
    ids: list[int]
    output_len: int


@dataclass
class Result:
    """What one request measured."""

    ok: bool
    latency: float = 0.0
    ttft: float = 0.0
    output_tokens: int = 0
    itl: list[float] = field(default_factory=list)
    error: str = ""


def make_requests(
    tok: Tokenizer, n: int, prompt_len: int, output_len: int, output_dist: str, seed: int
) -> list[Request]:
    """n prompts of prompt_len tokens (BOS included) and their output lengths (fixed or exponential)."""
    rng = random.Random(seed)
    first_normal = 3 + 256  # skip <unk>, <s>, </s> and the byte pieces
    requests = []
    for _ in range(n):
        ids = [tok.bos_id] + [rng.randrange(first_normal, tok.n_words) for _ in range(prompt_len - 1)]
        text = tok.decode(ids)
        ids = tok.encode(text, bos=True, eos=False)  # what the gateway will send for this text
        if output_dist == "exponential":
            length = max(1, min(int(rng.expovariate(1.0 / output_len)), 4 * output_len))
        else:
            length = output_len
        requests.append(Request(text, ids, length))
    return requests


def stream_gateway(stub: gateway_pb2_grpc.GatewayServiceStub, req: Request) -> Iterator[int]:
    """Yield the number of tokens of each stream message from the gateway."""
    msg = gateway_pb2.StreamTextCompletionRequest(
        prompts=[req.text], max_gen_len=req.output_len, temperature=0.0, ignore_eos=True
    )
    for m in stub.StreamTextCompletion(msg):
        if m.token_count:
            yield m.token_count


def stream_model(stub: model_pb2_grpc.ModelServiceStub, req: Request) -> Iterator[int]:
    """Yield the number of tokens of each StreamGenerate event from the model service."""
    msg = model_pb2.StreamGenerateRequest(
        prompt_tokens=[types.TokenIds(ids=req.ids)],
        max_gen_len=req.output_len,
        temperature=0.0,
        top_p=1.0,
        merge_pending_tokens=True,  # as the gateway asks
    )
    for ev in stub.StreamGenerate(msg):
        if ev.tokens:
            yield len(ev.tokens)


def measure(stream: Callable[[Request], Iterator[int]], req: Request) -> Result:
    """Run one request and time every token."""
    start = time.perf_counter()
    last, first, tokens, itl = start, 0.0, 0, []
    try:
        for n in stream(req):
            now = time.perf_counter()
            if tokens == 0:
                first = now - start
            else:
                itl.append(now - last)
            last, tokens = now, tokens + n
    except grpc.RpcError as e:
        return Result(ok=False, error=f"{e.code().name}: {e.details()}")
    return Result(ok=True, latency=last - start, ttft=first, output_tokens=tokens, itl=itl)


def run(
    stream: Callable[[Request], Iterator[int]],
    requests: list[Request],
    concurrency: int | None,
    rate: float | None,
    seed: int = 0,
) -> tuple[list[Result], float]:
    """Send the requests at a fixed concurrency or a Poisson rate; return results and wall time."""
    results: list[Result | None] = [None] * len(requests)
    start = time.perf_counter()
    if rate is None:
        cursor = iter(range(len(requests)))
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                results[i] = measure(stream, requests[i])

        threads = [threading.Thread(target=worker) for _ in range(concurrency or 1)]
    else:
        rng = random.Random(seed)
        delays, t = [], 0.0
        for _ in requests:
            t += rng.expovariate(rate)
            delays.append(t)

        def send(i: int) -> None:
            time.sleep(max(0.0, start + delays[i] - time.perf_counter()))
            results[i] = measure(stream, requests[i])

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return [r for r in results if r is not None], time.perf_counter() - start


def percentiles(values: list[float]) -> dict[str, float]:
    """Mean, p50, p90 and p99 in milliseconds."""
    if not values:
        return {"mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1e3

    return {"mean": statistics.fmean(values) * 1e3, "p50": pct(50), "p90": pct(90), "p99": pct(99)}


def summarize(results: list[Result], wall: float) -> dict:
    """vLLM's summary of a run."""
    ok = [r for r in results if r.ok]
    out_tokens = sum(r.output_tokens for r in ok)
    tpots = [(r.latency - r.ttft) / (r.output_tokens - 1) for r in ok if r.output_tokens > 1]
    return {
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "errors": sorted({r.error for r in results if not r.ok})[:5],
        "duration_s": wall,
        "request_throughput": len(ok) / wall,
        "output_throughput": out_tokens / wall,
        "total_output_tokens": out_tokens,
        "ttft_ms": percentiles([r.ttft for r in ok]),
        "tpot_ms": percentiles(tpots),
        "itl_ms": percentiles([x for r in ok for x in r.itl]),
        "e2el_ms": percentiles([r.latency for r in ok]),
    }


def print_summary(title: str, s: dict) -> None:
    """The summary as vLLM prints it."""
    print(f"============ {title} ============")
    print(f"{'Successful requests:':<40}{s['completed']:<10}")
    print(f"{'Failed requests:':<40}{s['failed']:<10}")
    print(f"{'Benchmark duration (s):':<40}{s['duration_s']:<10.2f}")
    print(f"{'Total generated tokens:':<40}{s['total_output_tokens']:<10}")
    print(f"{'Request throughput (req/s):':<40}{s['request_throughput']:<10.2f}")
    print(f"{'Output token throughput (tok/s):':<40}{s['output_throughput']:<10.2f}")
    for key, name in (
        ("ttft_ms", "Time to First Token"),
        ("tpot_ms", "Time per Output Token (excl. 1st token)"),
        ("itl_ms", "Inter-token Latency"),
        ("e2el_ms", "End-to-end Latency"),
    ):
        print(f"{'-' * 10}{name}{'-' * 10}")
        for stat in ("mean", "p50", "p90", "p99"):
            print(f"{f'{stat.capitalize()} {key[:-3].upper()} (ms):':<40}{s[key][stat]:<10.2f}")
    print("=" * (len(title) + 26))


def main(argv: list[str] | None = None) -> int:
    """Run a benchmark against a running service."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--target", choices=["gateway", "model"], default="gateway")
    p.add_argument("--addr", default="localhost:50051")
    p.add_argument("--tokenizer", type=Path, required=True, help="the stack's tokenizer.model (to make prompts)")
    p.add_argument("--num-requests", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--rate", type=float, default=None, help="Poisson arrivals per second (instead of --concurrency)")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--output-dist", choices=["fixed", "exponential"], default="fixed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the summary here")
    args = p.parse_args(argv)
    tok = Tokenizer.from_file(args.tokenizer)
    requests = make_requests(tok, args.num_requests, args.prompt_len, args.output_len, args.output_dist, args.seed)
    channel = grpc.insecure_channel(args.addr)
    if args.target == "gateway":
        gw = gateway_pb2_grpc.GatewayServiceStub(channel)
        results, wall = run(lambda r: stream_gateway(gw, r), requests, args.concurrency, args.rate, args.seed)
    else:
        model = model_pb2_grpc.ModelServiceStub(channel)
        results, wall = run(lambda r: stream_model(model, r), requests, args.concurrency, args.rate, args.seed)
    summary = summarize(results, wall)
    how = f"rate {args.rate}/s" if args.rate else f"concurrency {args.concurrency}"
    print_summary(f"{args.target} {how}, {args.output_dist} outputs", summary)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **summary}, indent=2))
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
