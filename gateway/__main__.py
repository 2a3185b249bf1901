"""python -m gateway --tokenizer-addr localhost:50052 --model-addr localhost:50053 --port 50051"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio
from prometheus_client import CollectorRegistry

from gateway.auth import ENV_VAR, ApiKeyInterceptor, load_keys
from gateway.core import GatewayCore, Limits
from gateway.downstream import Downstream, DownstreamConfig, parse_model_addrs
from gateway.metrics import GatewayMetrics
from gateway.server import SERVICE_NAME, GatewayServicer, watch_health
from llama.v1 import gateway_pb2
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

logger = logging.getLogger("gateway")


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway is started with."""

    server: ServerConfig
    downstream: DownstreamConfig
    limits: Limits
    api_keys: frozenset[str]
    log_level: str


def parse_args(argv: list[str] | None = None) -> GatewayConfig:
    """Flags → GatewayConfig."""
    p = argparse.ArgumentParser(prog="python -m gateway", description="Llama-2 gRPC gateway (llama.v1.GatewayService)")
    p.add_argument("--tokenizer-addr", default="localhost:50052", help="tokenizer service host:port")
    p.add_argument(
        "--model-addr",
        default="localhost:50053",
        help="model service replicas: host:port[,host:port...] or dns:///name:port (balanced round robin)",
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        help="seconds a call waits for a downstream service to be reachable (within its deadline)",
    )
    p.add_argument(
        "--default-timeout", type=float, default=600.0, help="deadline of downstream calls when the client sets none"
    )
    p.add_argument("--max-stop", type=int, default=Limits.max_stop, help="stop strings per request")
    p.add_argument("--max-stop-bytes", type=int, default=Limits.max_stop_bytes, help="bytes per stop string")
    p.add_argument("--api-key", action="append", default=[], help=f"accepted API key (repeatable; also ${ENV_VAR})")
    p.add_argument("--api-keys-file", type=Path, default=None, help="file of accepted API keys, one per line")
    add_server_args(p, port=50051, host="0.0.0.0", metrics_port=9091)
    ns = p.parse_args(argv)
    try:
        models = parse_model_addrs(ns.model_addr)
    except ValueError as e:
        p.error(str(e))
    server = ServerConfig.from_args(ns)
    downstream = DownstreamConfig(
        tokenizer_addr=ns.tokenizer_addr,
        model_addrs=models,
        connect_timeout_s=ns.connect_timeout,
        default_timeout_s=ns.default_timeout,
        max_message_bytes=server.max_message_bytes,
    )
    limits = Limits(max_stop=ns.max_stop, max_stop_bytes=ns.max_stop_bytes)
    return GatewayConfig(server, downstream, limits, load_keys(ns.api_key, ns.api_keys_file), ns.log_level)


async def serve(cfg: GatewayConfig) -> int:
    """Serve until SIGTERM or SIGINT, then drain within the grace period."""
    registry = CollectorRegistry()
    downstream = Downstream(cfg.downstream)
    core = GatewayCore(downstream, cfg.limits, GatewayMetrics(registry))
    interceptors = [ApiKeyInterceptor(cfg.api_keys)] if cfg.api_keys else []
    server = grpc.aio.server(options=grpc_options(cfg.server), interceptors=interceptors)
    tracker = RpcTracker(registry, "gateway")
    servicer = GatewayServicer(core, tracker)
    add_servicer(server, servicer, gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"])
    health = health_aio.HealthServicer()
    add_health_and_reflection(server, health, [SERVICE_NAME])
    port = bind(server, cfg.server)
    await server.start()
    gc.freeze()  # what start-up built lives as long as the process: the collector need not walk it
    stop_metrics = start_metrics(cfg.server, registry)
    watcher = asyncio.create_task(watch_health(downstream, health))
    logger.info(
        "gateway on %s:%d%s -> tokenizer %s, model %s%s",
        cfg.server.host,
        port,
        " (TLS)" if cfg.server.tls_cert else "",
        cfg.downstream.tokenizer_addr,
        ",".join(cfg.downstream.model_addrs),
        f", {len(cfg.api_keys)} API key(s)" if cfg.api_keys else "",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("draining for up to %.0f s", cfg.server.grace_s)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await tracker.drain(cfg.server.grace_s)
    await server.stop(1.0)
    await downstream.close()
    stop_metrics()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse flags and serve."""
    cfg = parse_args(argv)
    setup_logging(cfg.log_level)
    return asyncio.run(serve(cfg))


if __name__ == "__main__":
    raise SystemExit(main())
