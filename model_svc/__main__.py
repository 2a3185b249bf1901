"""torchrun --nproc_per_node N -m model_svc --ckpt-dir DIR --port 50053 --max-seq-len 512 --max-batch-size 8

Every rank loads its shard; rank 0 serves llama.v1.ModelService and plans each engine step, the
other ranks run the steps rank 0 broadcasts. A plain `python -m model_svc` is a group of one.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
import torch
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio
from prometheus_client import CollectorRegistry

from llama.v1 import model_pb2 as pb
from llama_grpc.rpc import RpcTracker, add_servicer
from llama_grpc.server import (
    ServerConfig,
    add_health_and_reflection,
    add_server_args,
    bind,
    grpc_options,
    setup_logging,
    start_metrics,
)
from model_svc.checkpoint import CheckpointError, load_model
from model_svc.distributed import DistContext, init_distributed, set_thread_budget, shutdown_distributed
from model_svc.engine import Engine, EngineConfig
from model_svc.metrics import EngineMetrics
from model_svc.model import Transformer
from model_svc.plan import PlanKind, broadcast_plan, execute
from model_svc.server import SERVICE_NAME, ModelServicer

logger = logging.getLogger("model_svc")


@dataclass(frozen=True)
class ModelConfig:
    """Everything the model service is started with."""

    server: ServerConfig
    ckpt_dir: Path
    max_seq_len: int
    max_batch_size: int
    device: str
    dtype: str
    engine: EngineConfig
    dist_timeout_s: float
    failure_linger_s: float
    prepack: bool
    threads: int
    log_level: str


def parse_args(argv: list[str] | None = None) -> ModelConfig:
    """Flags → ModelConfig."""
    p = argparse.ArgumentParser(
        prog="torchrun --nproc_per_node N -m model_svc",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ckpt-dir", type=Path, required=True, help="params.json + consolidated.NN.pth")
    p.add_argument("--max-seq-len", type=int, default=512, help="longest prompt + generation (default 512)")
    p.add_argument("--max-batch-size", type=int, default=8, help="KV-cache rows: prompts decoded at once")
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    p.add_argument("--device", choices=["cpu", "cuda"], default=default_device, help=f"default {default_device}")
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "float16"],
        default=None,
        help="weights and cache (default float32 on cpu, bfloat16 on cuda)",
    )
    p.add_argument("--max-queue", type=int, default=EngineConfig.max_queue, help="requests allowed to wait")
    p.add_argument(
        "--max-prefill-tokens",
        type=int,
        default=EngineConfig.max_prefill_tokens,
        help="prompt tokens admitted per engine step",
    )
    p.add_argument(
        "--prepack",
        choices=["on", "off"],
        default="on",
        help="pack linear weights for oneDNN on CPU (the fast path; default on)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per rank (default: this machine's cores shared among its ranks)",
    )
    p.add_argument("--dist-timeout", type=float, default=30.0, help="seconds a collective may wait for a rank")
    p.add_argument(
        "--failure-linger",
        type=float,
        default=3.0,
        help="seconds to report NOT_SERVING after the group fails, before exiting non-zero",
    )
    add_server_args(p, port=50053, host="127.0.0.1", metrics_port=9093)
    ns = p.parse_args(argv)
    if ns.threads < 0:
        p.error(f"--threads must be 0 (automatic) or more, not {ns.threads}")
    dtype = ns.dtype or ("bfloat16" if ns.device == "cuda" else "float32")
    engine = EngineConfig(max_queue=ns.max_queue, max_prefill_tokens=ns.max_prefill_tokens)
    return ModelConfig(
        server=ServerConfig.from_args(ns),
        ckpt_dir=ns.ckpt_dir,
        max_seq_len=ns.max_seq_len,
        max_batch_size=ns.max_batch_size,
        device=ns.device,
        dtype=dtype,
        engine=engine,
        dist_timeout_s=ns.dist_timeout,
        failure_linger_s=ns.failure_linger,
        prepack=ns.prepack == "on",
        threads=ns.threads,
        log_level=ns.log_level,
    )


def engine_info(model: Transformer, cfg: ModelConfig, ctx: DistContext) -> pb.GetEngineInfoResponse:
    """The static part of GetEngineInfo."""
    p = model.params
    return pb.GetEngineInfoResponse(
        max_seq_len=p.max_seq_len,
        max_batch_size=p.max_batch_size,
        vocab_size=p.vocab_size,
        world_size=ctx.world_size,
        dtype=cfg.dtype,
        device=ctx.device.type,
        n_layers=p.n_layers,
        dim=p.dim,
        max_queue=cfg.engine.max_queue,
        n_heads=p.n_heads,
        n_kv_heads=p.kv_heads,
        n_params=p.n_params,
        model_name=cfg.ckpt_dir.resolve().name,
    )


def follow(model: Transformer, ctx: DistContext) -> int:
    """Ranks > 0: run the plans rank 0 broadcasts until it says shut down."""
    # torchrun forwards SIGTERM to every rank; only rank 0 decides when the group stops.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            plan = broadcast_plan(None, ctx.control_group)
            if plan.kind is PlanKind.SHUTDOWN:
                return 0
            if plan.kind is PlanKind.STEP:
                execute(model, plan, ctx.device)
    except Exception as e:
        logger.error("rank %d lost the group: %s: %s", ctx.rank, type(e).__name__, e)
        return 1


async def serve(engine: Engine, model: Transformer, cfg: ModelConfig, ctx: DistContext, stop: threading.Event) -> int:
    """Rank 0's gRPC side: serve until stop is set (drain, exit 0) or the engine fails (exit 1)."""
    registry = engine.metrics.registry
    server = grpc.aio.server(options=grpc_options(cfg.server))
    tracker = RpcTracker(registry, "model")
    servicer = ModelServicer(engine, tracker, engine_info(model, cfg, ctx))
    add_servicer(server, servicer, pb.DESCRIPTOR.services_by_name["ModelService"])
    health = health_aio.HealthServicer()
    add_health_and_reflection(server, health, [SERVICE_NAME])
    port = bind(server, cfg.server)
    await server.start()
    stop_metrics = start_metrics(cfg.server, registry)
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info(
        "model service on %s:%d: %s, %d rank(s), %s on %s, max_seq_len %d, max_batch_size %d",
        cfg.server.host,
        port,
        cfg.ckpt_dir,
        ctx.world_size,
        cfg.dtype,
        ctx.device,
        cfg.max_seq_len,
        cfg.max_batch_size,
    )
    loop = asyncio.get_running_loop()

    async def not_serving() -> None:
        for name in ("", SERVICE_NAME):
            await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    engine.on_failure = lambda: asyncio.run_coroutine_threadsafe(not_serving(), loop).result(timeout=5)
    while not (stop.is_set() or engine.finished.is_set()):
        await asyncio.sleep(0.1)

    if engine.failure is None:  # SIGTERM: refuse new work, let the running requests finish
        logger.info("draining for up to %.0f s", cfg.server.grace_s)
        await not_serving()
        engine.begin_drain()
        await tracker.drain(cfg.server.grace_s, idle=lambda: engine.idle() or engine.finished.is_set())
        engine.stop()
        while not engine.finished.is_set():
            await asyncio.sleep(0.05)
        await server.stop(1.0)
        stop_metrics()
        return 0 if engine.failure is None else 1
    await not_serving()
    # Linger even if torchrun already sent SIGTERM (it allows --shutdown-timeout, 30 s): callers
    # and health checks see UNAVAILABLE / NOT_SERVING rather than a refused connection.
    logger.error("the model group failed; NOT_SERVING for %.0f s, then exiting", cfg.failure_linger_s)
    await asyncio.sleep(cfg.failure_linger_s)
    await server.stop(0.5)
    stop_metrics()
    return 1


def lead(model: Transformer, cfg: ModelConfig, ctx: DistContext) -> int:
    """Rank 0: the engine in this (main) thread, gRPC on an asyncio loop in another.

    The thread that loaded the model runs its forward passes: driven from a second thread, the
    same decode step took ~45% longer here (OpenMP and oneDNN keep per-thread state).
    """
    engine = Engine(model, cfg.engine, ctx, EngineMetrics(CollectorRegistry()))
    # Everything built so far lives as long as the process: keep the collector from walking it
    # again and again (a full collection over torch's objects is a visible hiccup in a step).
    gc.freeze()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    code: list[int] = []
    grpc_thread = threading.Thread(
        target=lambda: code.append(asyncio.run(serve(engine, model, cfg, ctx, stop))), name="grpc"
    )
    grpc_thread.start()
    engine.run()  # until the gRPC side drains and stops it, or the group fails
    grpc_thread.join()
    return code[0] if code else 1


def main(argv: list[str] | None = None) -> int:
    """Join the group, load this rank's shard, then serve (rank 0) or follow (the others)."""
    cfg = parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    setup_logging(cfg.log_level if rank == 0 else "WARNING")  # only rank 0 logs at INFO
    try:
        ctx = init_distributed(cfg.device, cfg.dist_timeout_s)
        threads = set_thread_budget(ctx.local_world_size, cfg.threads)
        logger.info("rank %d: %d torch threads", ctx.rank, threads)
        model = load_model(
            cfg.ckpt_dir,
            max_seq_len=cfg.max_seq_len,
            max_batch_size=cfg.max_batch_size,
            device=ctx.device,
            dtype_name=cfg.dtype,
            rank=ctx.rank,
            world_size=ctx.world_size,
            prepack=cfg.prepack,
        )
    except (CheckpointError, RuntimeError) as e:
        logger.error("cannot start: %s", e)
        return 2
    code = lead(model, cfg, ctx) if ctx.rank == 0 else follow(model, ctx)
    if code == 0:
        shutdown_distributed()
    sys.stdout.flush()
    sys.stderr.flush()
    # After a failure the group's state is unknown: leave without waiting on dead peers.
    os._exit(code)


if __name__ == "__main__":
    main()
