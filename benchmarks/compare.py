"""The stack against its peers, side by side in one run, on the same random float32 weights.

    python -m benchmarks.compare [--sizes 50M 110M] [--out .bench] [--no-llamacpp]

For each model size: the machine's matrix-vector bandwidth and the decode bound it implies;
transformers' greedy generate (batch 1 and 16); the seed's static-batch generate; llama.cpp
through llama-cpp-python on an f32 GGUF of the same weights (after checking its greedy tokens
equal transformers'); and the stack through the gateway at concurrency 1, 4 and 16 (fixed and
exponential output lengths, EOS ignored), with the model service called directly for the
gateway's TTFT overhead. The stack stays up (idle) while the in-process peers run, and each
target's two sides run back to back: transformers b=1 then the gateway at c=1, llama.cpp b=1
then c=16, the static batches then c=16 with the same exponential lengths. Writes
OUT/results.json, OUT/throughput.png and OUT/latency.png, and prints the table BENCHMARKS.md holds.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import SIZES, machine
from benchmarks.peers import (
    bench_tokenizer,
    hf_decode,
    matvec_bandwidth,
    seed_decode,
    static_batches,
    weight_bytes_per_step,
)
from benchmarks.serve import make_requests, measure, run, stream_gateway, stream_model, summarize
from llama_grpc.launch import Service, free_port, python_module
from llama_grpc.stack import model_command
from model_svc.checkpoint import load_model
from model_svc.distributed import init_distributed
from model_svc.hf import hf_model
from model_svc.layout import random_state_dict, write_checkpoint
from tokenizer_svc.tokenizer import Tokenizer

PROMPT_LEN, NEW_TOKENS, BATCH = 32, 128, 16


def start_stack(ckpt: Path, tokenizer_path: Path, log_dir: Path) -> list[Service]:
    """Tokenizer, model (1 rank, 16 rows) and gateway, as `make run` starts them."""
    tok_port, model_port, gw_port = free_port(), free_port(), free_port()
    tok = Service(
        "tokenizer",
        python_module("tokenizer_svc", f"--tokenizer-path={tokenizer_path}", f"--port={tok_port}", "--metrics-port=0"),
        tok_port,
        log_dir=log_dir,
    )
    model = Service(
        "model",
        model_command(ckpt, 1, model_port, 0, "--max-seq-len=1024", f"--max-batch-size={BATCH}"),
        model_port,
        log_dir=log_dir,
        lead_child=True,
    )
    tok.wait_healthy(120)
    model.wait_healthy(600)
    gw = Service(
        "gateway",
        python_module(
            "gateway",
            f"--tokenizer-addr={tok.address}",
            f"--model-addr={model.address}",
            f"--port={gw_port}",
            "--host=127.0.0.1",
            "--metrics-port=0",
        ),
        gw_port,
        log_dir=log_dir,
    )
    gw.wait_healthy(120)
    return [tok, model, gw]


class StackRunner:
    """The load generator through the gateway (or straight to the model service) of a running stack."""

    def __init__(self, services: list[Service], tok: Tokenizer) -> None:
        import grpc

        from llama.v1 import gateway_pb2_grpc, model_pb2_grpc

        _, model, gw = services
        self.gw_stub = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(gw.address))
        self.model_stub = model_pb2_grpc.ModelServiceStub(grpc.insecure_channel(model.address))
        self.tok = tok
        self.out: dict = {}

    def go(self, name: str, target: str, n: int, concurrency: int, lengths: list[int] | None = None) -> None:
        """n requests at a concurrency; fixed output lengths unless lengths are given."""
        reqs = make_requests(self.tok, n, PROMPT_LEN, NEW_TOKENS, "fixed", seed=len(self.out))
        if lengths is not None:
            for r, length in zip(reqs, lengths, strict=False):
                r.output_len = length
        stub = self.gw_stub if target == "gateway" else self.model_stub
        stream = stream_gateway if target == "gateway" else stream_model
        results, wall = run(lambda r: stream(stub, r), reqs, concurrency, None)
        self.out[name] = s = summarize(results, wall)
        print(
            f"  {name:<28} {s['output_throughput']:8.1f} tok/s  TTFT p50 {s['ttft_ms']['p50']:7.1f} ms  "
            f"TPOT p50 {s['tpot_ms']['p50']:6.1f} ms  failed {s['failed']}",
            flush=True,
        )

    def ttft(self) -> None:
        """The gateway's TTFT overhead: model direct and gateway requests alternately."""
        reqs = make_requests(self.tok, 30, PROMPT_LEN, 32, "fixed", seed=99)
        self.out["ttft pairs"] = p = ttft_pairs(self.model_stub, self.gw_stub, reqs)
        print(
            f"  {'TTFT, alternating requests':<28} model {p['model_ms']:.1f} ms, gateway {p['gateway_ms']:.1f} ms, "
            f"overhead p50 {p['overhead_ms']:.1f} ms",
            flush=True,
        )


def ttft_pairs(model_stub: object, gw_stub: object, requests: list) -> dict[str, float]:
    """TTFT of the same prompts sent alternately to the model service and through the gateway.

    Alternating, each gateway request meets the machine in the state a direct one just did, so
    the difference is the gateway's (the median of the per-pair differences).
    """
    direct, via = [], []
    for r in requests:
        direct.append(measure(lambda q: stream_model(model_stub, q), r).ttft * 1e3)
        via.append(measure(lambda q: stream_gateway(gw_stub, q), r).ttft * 1e3)
    return {
        "model_ms": statistics.median(direct),
        "gateway_ms": statistics.median(via),
        "overhead_ms": statistics.median(b - a for a, b in zip(direct, via, strict=True)),
    }


def exponential_lengths(n: int, mean: int, seed: int = 7) -> list[int]:
    """Output lengths drawn from an exponential distribution (as Anyscale's continuous-batching study)."""
    rng = random.Random(seed)
    return [max(1, min(int(rng.expovariate(1.0 / mean)), 4 * mean)) for _ in range(n)]


def bench_size(size: str, tok_proto: bytes, work: Path, use_llamacpp: bool, bandwidth: float) -> dict:
    """Every peer and the stack on one model size (bandwidth: the best measured matvec GB/s)."""
    args = SIZES[size]
    print(f"\n== {size}: {args.n_params / 1e6:.1f}M parameters, float32", flush=True)
    state = random_state_dict(args, seed=0)
    ckpt = work / f"{size}-mp1"
    write_checkpoint(ckpt, args, state, 1)
    tok_path = work / "tokenizer.model"
    tok = Tokenizer(tok_proto)
    result: dict = {"size": size, "n_params": args.n_params}
    weight_bytes = weight_bytes_per_step(args)
    result["bound_tok_s"] = bandwidth * 1e9 / weight_bytes
    result["weight_mb"] = weight_bytes / 1e6
    print(
        f"  bandwidth bound {result['bound_tok_s']:.1f} tok/s ({weight_bytes / 1e6:.0f} MB per step "
        f"at {bandwidth:.1f} GB/s)",
        flush=True,
    )

    rng = random.Random(1)
    prompts = [[1] + [rng.randrange(259, args.vocab_size) for _ in range(PROMPT_LEN - 1)] for _ in range(BATCH)]
    exp = exponential_lengths(128, NEW_TOKENS)
    hf = hf_model(state, args)
    init_distributed("cpu")
    model = load_model(
        ckpt,
        max_seq_len=1024,
        max_batch_size=BATCH,
        device=torch.device("cpu"),
        dtype_name="float32",
        rank=0,
        world_size=1,
        prepack=True,
    )
    llm = None
    if use_llamacpp:
        from benchmarks.peers import llamacpp_greedy, llamacpp_model, write_gguf

        gguf_path = work / f"{size}-f32.gguf"
        write_gguf(gguf_path, state, args, tok_proto)
        llm = llamacpp_model(gguf_path, n_ctx=512, threads=torch.get_num_threads())
        ours = llamacpp_greedy(llm, prompts[0], 32)
        ref = hf.generate(
            torch.tensor([prompts[0]]),
            max_new_tokens=32,
            min_new_tokens=32,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )[0, PROMPT_LEN:].tolist()
        result["llamacpp_greedy_matches"] = ours == ref
        print(f"  llama.cpp greedy tokens equal transformers': {ours == ref}", flush=True)

    # The stack idles while an in-process peer runs; each target's two sides run back to back, so
    # the drift of a shared machine over the minutes of the run does not land in their ratio.
    tok_path.write_bytes(tok_proto)
    services = start_stack(ckpt, tok_path, work)
    try:
        stack = StackRunner(services, tok)
        stack.go("warmup", "gateway", 4, 4)
        stack.ttft()

        result["transformers_b1"] = hf_decode(hf, prompts[:1], NEW_TOKENS)
        print(f"  transformers b=1 {result['transformers_b1']['output_tok_s']:.1f} tok/s", flush=True)
        stack.go("gateway c=1", "gateway", 12, 1)
        stack.go("model direct c=1", "model", 12, 1)
        result["seed_b1"] = seed_decode(model, prompts[:1], NEW_TOKENS)
        print(f"  seed generate b=1 {result['seed_b1']['output_tok_s']:.1f} tok/s", flush=True)

        if llm is not None:
            from benchmarks.peers import llamacpp_decode

            result["llamacpp_b1"] = llamacpp_decode(llm, prompts[0], NEW_TOKENS)
            print(f"  llama.cpp b=1 {result['llamacpp_b1']['output_tok_s']:.1f} tok/s", flush=True)
        stack.go("gateway c=16", "gateway", 48, 16)
        stack.go("gateway c=4", "gateway", 16, 4)

        exp_prompts = [p for p in prompts for _ in range(8)]
        result["static_exponential"] = static_batches(model, exp_prompts, exp, BATCH)
        print(
            f"  seed static batches of 16, exponential lengths {result['static_exponential']['output_tok_s']:.1f} "
            "tok/s",
            flush=True,
        )
        stack.go("gateway c=16 exponential", "gateway", len(exp), 16, exp)

        result["transformers_b16"] = hf_decode(hf, prompts, NEW_TOKENS)
        print(f"  transformers b=16 {result['transformers_b16']['output_tok_s']:.1f} tok/s", flush=True)
        del stack.out["warmup"]
        order = ["ttft pairs", "model direct c=1", "gateway c=1", "gateway c=4", "gateway c=16"]
        result["stack"] = {k: stack.out[k] for k in [*order, "gateway c=16 exponential"]}
    finally:
        for svc in reversed(services):
            svc.stop()
    del hf, model, llm
    return result


def ratios(r: dict) -> dict[str, float]:
    """The targets of the serving-benchmarks issue, as measured ratios."""
    st = r["stack"]
    b1 = st["gateway c=1"]
    stack_b1 = 1e3 / b1["tpot_ms"]["p50"]  # decode tok/s of one stream through the gateway
    out = {
        "stack_b1_decode_tok_s": stack_b1,
        "stack_b1_vs_transformers_b1": stack_b1 / (1e3 / r["transformers_b1"]["ms_per_step"]),
        "stack_b1_vs_bound": stack_b1 / r["bound_tok_s"],
        "stack_c16_exp_vs_static": st["gateway c=16 exponential"]["output_throughput"]
        / r["static_exponential"]["output_tok_s"],
        "gateway_ttft_overhead_ms": st["ttft pairs"]["overhead_ms"],
    }
    if "llamacpp_b1" in r:
        llama = 1e3 / r["llamacpp_b1"]["ms_per_step"]
        out["stack_b1_vs_llamacpp_b1"] = stack_b1 / llama
        out["stack_c16_vs_llamacpp_b1"] = st["gateway c=16"]["output_throughput"] / r["llamacpp_b1"]["output_tok_s"]
    return out


def table(results: list[dict]) -> str:
    """The markdown table of BENCHMARKS.md."""
    lines = [
        "| model | engine | batch / concurrency | output tok/s | decode ms/token (p50) | TTFT p50 ms |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        m = f"{r['size']} ({r['n_params'] / 1e6:.0f}M)"
        lines.append(
            f"| {m} | bandwidth bound ({r['weight_mb']:.0f} MB/step) | 1 | {r['bound_tok_s']:.1f} | "
            f"{1e3 / r['bound_tok_s']:.1f} | |"
        )
        for key, name, b in (
            ("transformers_b1", "transformers generate", "1"),
            ("transformers_b16", "transformers generate", "16"),
            ("llamacpp_b1", "llama.cpp (llama-cpp-python, f32)", "1"),
            ("seed_b1", "seed generate (in-process, our model)", "1"),
        ):
            if key in r:
                lines.append(f"| {m} | {name} | {b} | {r[key]['output_tok_s']:.1f} | {r[key]['ms_per_step']:.1f} | |")
        lines.append(
            f"| {m} | seed static batches, exponential lengths | 16 | "
            f"{r['static_exponential']['output_tok_s']:.1f} | | |"
        )
        for name, s in r["stack"].items():
            if name == "ttft pairs":
                lines.append(
                    f"| {m} | stack: TTFT, model direct vs gateway alternately | 1 | | | "
                    f"{s['model_ms']:.1f} / {s['gateway_ms']:.1f} (+{s['overhead_ms']:.1f}) |"
                )
                continue
            lines.append(
                f"| {m} | stack: {name} | {name.split('c=')[1].split()[0]} | {s['output_throughput']:.1f} | "
                f"{s['tpot_ms']['p50']:.1f} | {s['ttft_ms']['p50']:.1f} |"
            )
    return "\n".join(lines)


def plots(results: list[dict], out: Path) -> None:
    """throughput.png (tok/s against concurrency) and latency.png (TTFT and TPOT percentiles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        conc = [1, 4, 16]
        tps = [r["stack"][f"gateway c={c}"]["output_throughput"] for c in conc]
        ax.plot(conc, tps, "o-", label="stack (gateway, streaming)")
        ax.axhline(r["transformers_b1"]["output_tok_s"], color="gray", ls="--", label="transformers b=1")
        ax.axhline(r["transformers_b16"]["output_tok_s"], color="gray", ls=":", label="transformers b=16 (static)")
        if "llamacpp_b1" in r:
            ax.axhline(r["llamacpp_b1"]["output_tok_s"], color="green", ls="--", label="llama.cpp b=1")
        ax.axhline(r["bound_tok_s"], color="red", ls="-.", label="b=1 bandwidth bound")
        ax.set_xscale("log", base=2)
        ax.set_xticks(conc, [str(c) for c in conc])
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("output tokens/s")
        ax.set_title(f"{r['size']} float32, 2-core CPU")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    names = ["model direct c=1", "gateway c=1", "gateway c=4", "gateway c=16", "gateway c=16 exponential"]
    width = 0.8 / (3 * len(results))
    for k, metric in enumerate(("ttft_ms", "tpot_ms")):
        ax = axes[k]
        for j, r in enumerate(results):
            for i, p in enumerate(("p50", "p90", "p99")):
                xs = [n + (j * 3 + i) * width for n in range(len(names))]
                ax.bar(xs, [r["stack"][n][metric][p] for n in names], width, label=f"{r['size']} {p}")
        ax.set_xticks([n + 0.4 for n in range(len(names))], names, rotation=20, fontsize=7)
        ax.set_ylabel("ms")
        ax.set_title("time to first token" if metric == "ttft_ms" else "time per output token")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)


def main(argv: list[str] | None = None) -> int:
    """Run everything, print the table, write results and plots."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", nargs="+", default=["50M", "110M"], choices=list(SIZES))
    p.add_argument("--out", type=Path, default=Path(".bench"))
    p.add_argument("--no-llamacpp", action="store_true", help="skip llama.cpp (when llama-cpp-python is missing)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="llama-grpc-bench-"))
    torch.manual_seed(0)
    print(f"machine: {machine()}", flush=True)
    bw = matvec_bandwidth()
    bandwidth = bw["best"]
    print(
        f"float32 matrix-vector bandwidth: torch F.linear {bw['torch_linear']:.1f} GB/s, oneDNN prepacked "
        f"{bw['onednn_packed']:.1f} GB/s",
        flush=True,
    )
    tok_proto = bench_tokenizer()
    results = [bench_size(s, tok_proto, work, not args.no_llamacpp, bandwidth) for s in args.sizes]
    summary = {
        "machine": machine(),
        "bandwidth_gb_s": bandwidth,
        "results": results,
        "ratios": {r["size"]: ratios(r) for r in results},
    }
    (args.out / "results.json").write_text(json.dumps(summary, indent=2))
    plots(results, args.out)
    print("\n" + table(results))
    print("\nratios:")
    for size, rs in summary["ratios"].items():
        print(f"  {size}: " + ", ".join(f"{k} {v:.2f}" for k, v in rs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
