"""Aggregate output tokens/s of the model service at several concurrencies (continuous batching).

    python -m benchmarks.model_throughput [--size 50M] [--concurrency 1 4 16]

Starts `torchrun --nproc_per_node 1 -m model_svc` on a random float32 checkpoint, then runs
`concurrency` clients, each sending StreamGenerate requests of --prompt-len tokens for
--gen-len new tokens (no stop ids: lengths are fixed), for --rounds requests per client.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import random
import sys
import time

import grpc

from benchmarks.common import SIZES, machine, make_checkpoint
from llama.v1 import model_pb2 as pb
from llama.v1 import model_pb2_grpc
from llama.v1 import types_pb2 as types
from llama_grpc.launch import Service, free_port


def start_model(size: str, max_batch_size: int, extra: list[str]) -> Service:
    """The model service on a random checkpoint of the named size."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "1",
        "-m",
        "model_svc",
        "--ckpt-dir",
        str(make_checkpoint(size)),
        "--port",
        str(port),
        "--metrics-port",
        "0",
        "--max-seq-len",
        "512",
        "--max-batch-size",
        str(max_batch_size),
        *extra,
    ]
    svc = Service("model-bench", cmd, port)
    svc.wait_healthy(300)
    return svc


def run_clients(address: str, concurrency: int, rounds: int, prompt_len: int, gen_len: int, vocab: int) -> dict:
    """Run the clients; return wall time, generated tokens and per-request latencies."""
    stub = model_pb2_grpc.ModelServiceStub(grpc.insecure_channel(address))
    rng = random.Random(concurrency)

    def client(c: int) -> tuple[int, list[float]]:
        tokens, latencies = 0, []
        for _ in range(rounds):
            prompt = [1] + [rng.randrange(3, vocab) for _ in range(prompt_len - 1)]
            req = pb.StreamGenerateRequest(
                prompt_tokens=[types.TokenIds(ids=prompt)], max_gen_len=gen_len, temperature=0.0, top_p=1.0
            )
            start = time.perf_counter()
            tokens += sum(len(ev.tokens) for ev in stub.StreamGenerate(req))
            latencies.append(time.perf_counter() - start)
        return tokens, latencies

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(client, range(concurrency)))
    wall = time.perf_counter() - start
    return {"wall": wall, "tokens": sum(r[0] for r in results), "latencies": [x for r in results for x in r[1]]}


def main() -> None:
    """Print tokens/s per concurrency and the ratio to concurrency 1."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="50M")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--gen-len", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="requests per client")
    args = parser.parse_args()
    svc = start_model(args.size, max(args.concurrency), [])
    try:
        vocab = SIZES[args.size].vocab_size
        run_clients(svc.address, 1, 1, args.prompt_len, 8, vocab)  # warm-up
        print(f"machine: {machine()}")
        print(
            f"model: {args.size} ({SIZES[args.size].n_params / 1e6:.1f}M parameters, float32), 1 rank, "
            f"prompt {args.prompt_len} tokens, {args.gen_len} new tokens per request"
        )
        print(f"{'concurrency':>11} {'requests':>9} {'tokens/s':>9} {'vs c=1':>7} {'mean latency s':>15}")
        base = None
        for c in args.concurrency:
            r = run_clients(svc.address, c, args.rounds, args.prompt_len, args.gen_len, vocab)
            tps = r["tokens"] / r["wall"]
            base = base or tps
            mean = sum(r["latencies"]) / len(r["latencies"])
            print(f"{c:>11} {len(r['latencies']):>9} {tps:>9.1f} {tps / base:>6.2f}x {mean:>15.2f}")
    finally:
        svc.stop()


if __name__ == "__main__":
    main()
