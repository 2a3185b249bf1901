"""Encode throughput: the tokenizer service over gRPC at 1 and 16 clients, against in-process calls.

python -m benchmarks.tokenizer [--requests 2000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from benchmarks.common import machine
from llama.v1 import tokenizer_pb2 as pb
from llama.v1 import tokenizer_pb2_grpc
from llama_grpc.launch import Service, free_port, python_module
from tests.corpus import sentences
from tokenizer_svc.tokenizer import Tokenizer
from tokenizer_svc.train import train_tokenizer


def run(clients: int, total: int, call: Callable[[int], int]) -> tuple[float, float]:
    """Run call(i) total times from `clients` threads; return (calls/s, tokens/s)."""
    tokens = 0
    lock = threading.Lock()

    def worker(ids: range) -> None:
        nonlocal tokens
        n = sum(call(i) for i in ids)
        with lock:
            tokens += n

    per = total // clients
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, [range(c * per, (c + 1) * per) for c in range(clients)]))
    elapsed = time.perf_counter() - start
    return per * clients / elapsed, tokens / elapsed


def main() -> None:
    """Print requests/s and tokens/s for each way of calling the tokenizer."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--vocab", type=int, default=1500)
    args = parser.parse_args()
    corpus = sentences(20000, seed=1)
    model = Path(tempfile.mkdtemp()) / "tokenizer.model"
    model.write_bytes(train_tokenizer(corpus, args.vocab))
    tok = Tokenizer.from_file(model)
    prompts = [" ".join(corpus[i : i + 6]) for i in range(0, 6000, 6)]  # ~60 words each

    port = free_port()
    svc = Service(
        "tokenizer-bench",
        python_module("tokenizer_svc", "--tokenizer-path", str(model), "--port", str(port), "--metrics-port", "0"),
        port,
    )
    svc.wait_healthy(60)
    channel = grpc.insecure_channel(svc.address)
    stub = tokenizer_pb2_grpc.TokenizerServiceStub(channel)

    def in_process(i: int) -> int:
        return len(tok.encode(prompts[i % len(prompts)], bos=True, eos=False))

    def over_grpc(i: int) -> int:
        resp = stub.Encode(pb.EncodeRequest(texts=[prompts[i % len(prompts)]], bos=True))
        return len(resp.tokens[0].ids)

    print(f"machine: {machine()}")
    print(f"tokenizer: sentencepiece BPE, vocabulary {tok.n_words}; prompts of ~{in_process(0)} tokens")
    print(f"{'caller':<34} {'clients':>7} {'requests/s':>11} {'tokens/s':>11}")
    try:
        run(1, 200, over_grpc)  # warm-up
        for name, call in (("sentencepiece in-process", in_process), ("TokenizerService.Encode (gRPC)", over_grpc)):
            for clients in (1, 16):
                rps, tps = run(clients, args.requests, call)
                print(f"{name:<34} {clients:>7} {rps:>11.0f} {tps:>11.0f}")
    finally:
        channel.close()
        svc.stop()


if __name__ == "__main__":
    main()
