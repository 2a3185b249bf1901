"""Aggregate output tokens/s of the model service at several concurrencies (continuous batching).

    python -m benchmarks.model_throughput [--size 50M] [--concurrency 1 4 16]

Starts `torchrun --nproc_per_node 1 -m model_svc` on a random float32 checkpoint and sends it
StreamGenerate requests straight (no gateway): --prompt-len tokens each, --gen-len new tokens
(no stop ids, so lengths are fixed), --rounds requests per concurrent client.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import grpc

from benchmarks.common import SIZES, machine, make_checkpoint
from benchmarks.peers import bench_tokenizer
from benchmarks.serve import make_requests, run, stream_model, summarize
from llama.v1 import model_pb2_grpc
from llama_grpc.launch import Service, free_port
from llama_grpc.stack import model_command
from tokenizer_svc.tokenizer import Tokenizer


def main() -> None:
    """Print tokens/s per concurrency and the ratio to concurrency 1."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="50M")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--gen-len", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="requests per client")
    args = parser.parse_args()
    tok = Tokenizer(bench_tokenizer())  # only to draw prompts of the model's vocabulary
    port = free_port()
    cmd = model_command(
        make_checkpoint(args.size), 1, port, 0, "--max-seq-len=512", f"--max-batch-size={max(args.concurrency)}"
    )
    svc = Service("model-bench", cmd, port, log_dir=Path(tempfile.gettempdir()), lead_child=True)
    svc.wait_healthy(300)
    stub = model_pb2_grpc.ModelServiceStub(grpc.insecure_channel(svc.address))
    try:
        warm = make_requests(tok, 2, args.prompt_len, 8, "fixed", seed=0)
        run(lambda r: stream_model(stub, r), warm, 2, None)
        print(f"machine: {machine()}")
        print(
            f"model: {args.size} ({SIZES[args.size].n_params / 1e6:.1f}M parameters, float32), 1 rank, "
            f"prompt {args.prompt_len} tokens, {args.gen_len} new tokens per request"
        )
        print(f"{'concurrency':>11} {'requests':>9} {'tokens/s':>9} {'vs c=1':>7} {'TPOT p50 ms':>12}")
        base = None
        for c in args.concurrency:
            reqs = make_requests(tok, c * args.rounds, args.prompt_len, args.gen_len, "fixed", seed=c)
            results, wall = run(lambda r: stream_model(stub, r), reqs, c, None)
            s = summarize(results, wall)
            base = base or s["output_throughput"]
            print(
                f"{c:>11} {s['completed']:>9} {s['output_throughput']:>9.1f} {s['output_throughput'] / base:>6.2f}x "
                f"{s['tpot_ms']['p50']:>12.1f}"
            )
    finally:
        svc.stop()


if __name__ == "__main__":
    main()
