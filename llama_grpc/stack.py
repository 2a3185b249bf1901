"""python -m llama_grpc.stack: the three services on this machine, until Ctrl-C (what `make run` runs).

Starts the tokenizer service, the model service (torchrun, --nproc ranks) and the gateway, waits
for their health, prints the address and a grpcurl example, and stops all three on Ctrl-C.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from llama_grpc.launch import Service, health_status, python_module

EXAMPLE = (
    '{grpcurl} -plaintext -d \'{{"dialogs": [{{"messages": [{{"role": "ROLE_USER", '
    '"content": "Tell me a story about a llama."}}]}}], "max_gen_len": 96}}\' '
    "localhost:{port} llama.v1.GatewayService/ChatCompletion"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The stack's flags."""
    p = argparse.ArgumentParser(
        prog="python -m llama_grpc.stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ckpt-dir", type=Path, required=True, help="Meta-layout checkpoint (one shard per rank)")
    p.add_argument("--tokenizer-path", type=Path, required=True, help="sentencepiece tokenizer.model")
    p.add_argument("--nproc", type=int, default=1, help="model-parallel ranks (torchrun --nproc_per_node)")
    p.add_argument("--port", type=int, default=50051, help="the gateway's port (the others are the next two)")
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--system-prompt", default=None, help="default system prompt (default: Meta's)")
    p.add_argument("--model-arg", action="append", default=[], help="extra flag for model_svc (repeatable)")
    p.add_argument("--log-dir", type=Path, default=None, help="where the services' logs go (default: a temp dir)")
    p.add_argument("--grpcurl", default="grpcurl", help="how to call grpcurl in the printed example")
    return p.parse_args(argv)


def model_command(
    ckpt_dir: Path, nproc: int, port: int, metrics_port: int, *extra: str, max_restarts: int = 0
) -> list[str]:
    """torchrun --nproc_per_node nproc -m model_svc ..., as this Python runs it."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    torchrun += [f"--max-restarts={max_restarts}"] if max_restarts else []
    flags = [f"--ckpt-dir={ckpt_dir}", f"--port={port}", f"--metrics-port={metrics_port}", *extra]
    return [*torchrun, "-m", "model_svc", *flags]


def start(args: argparse.Namespace, log_dir: Path) -> list[Service]:
    """Start the three services (tokenizer, model, gateway) and wait until each is SERVING."""
    gw_port, tok_port, model_port = args.port, args.port + 1, args.port + 2
    system = [f"--system-prompt={args.system_prompt}"] if args.system_prompt is not None else []
    tok_cmd = python_module(
        "tokenizer_svc", f"--tokenizer-path={args.tokenizer_path}", f"--port={tok_port}", "--metrics-port=9092", *system
    )
    tok = Service("tokenizer", tok_cmd, tok_port, log_dir=log_dir, metrics_port=9092)
    limits = [f"--max-seq-len={args.max_seq_len}", f"--max-batch-size={args.max_batch_size}", *args.model_arg]
    model_cmd = model_command(args.ckpt_dir, args.nproc, model_port, 9093, *limits)
    model = Service("model", model_cmd, model_port, log_dir=log_dir, metrics_port=9093, lead_child=True)
    services = [tok, model]
    try:
        tok.wait_healthy(120)
        print(f"  tokenizer service   127.0.0.1:{tok_port}   SERVING", flush=True)
        model.wait_healthy(600)
        print(f"  model service       127.0.0.1:{model_port}   SERVING ({args.nproc} rank(s))", flush=True)
        gw_cmd = python_module(
            "gateway",
            f"--tokenizer-addr={tok.address}",
            f"--model-addr={model.address}",
            f"--port={gw_port}",
            "--metrics-port=9091",
        )
        gw = Service("gateway", gw_cmd, gw_port, log_dir=log_dir, metrics_port=9091)
        services.append(gw)
        gw.wait_healthy(120)
        print(f"  gateway             0.0.0.0:{gw_port}    SERVING", flush=True)
    except BaseException:
        stop(services)
        raise
    return services


def stop(services: list[Service]) -> None:
    """Stop the services, the gateway first, and report how each ended."""
    for svc in reversed(services):
        code = svc.stop(timeout=40)
        print(f"  {svc.name} stopped ({code})", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the stack until Ctrl-C or SIGTERM, or until a service dies."""
    args = parse_args(argv)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="llama-grpc-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"starting llama-grpc (logs in {log_dir})", flush=True)
    started = time.monotonic()
    try:
        services = start(args, log_dir)
    except (RuntimeError, TimeoutError) as e:
        print(f"could not start the stack: {e}", file=sys.stderr)
        return 1
    print(f"\nready in {time.monotonic() - started:.0f} s: llama.v1.GatewayService on localhost:{args.port}")
    print("metrics: http://localhost:9091/metrics (gateway), :9092 (tokenizer), :9093 (model)")
    print("try it in another terminal:\n")
    print("  " + EXAMPLE.format(grpcurl=args.grpcurl, port=args.port))
    print(f'\n  {shlex.quote(sys.executable)} -m gateway.client --addr localhost:{args.port} chat "Hello"')
    print("\nCtrl-C stops all three.", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    status = "SERVING"
    while not done.wait(1.0):
        dead = [s for s in services if s.proc.poll() is not None]
        if dead:
            print(f"\n{dead[0].name} exited ({dead[0].proc.returncode}); see {dead[0].log_path}", file=sys.stderr)
            break
        now = health_status(services[-1].address, timeout=2.0)
        if now != status:
            print(f"\nthe gateway reports {now}", file=sys.stderr)
            status = now
    print("\nstopping ...", flush=True)
    stop(services)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
