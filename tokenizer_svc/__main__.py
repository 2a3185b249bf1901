"""python -m tokenizer_svc --tokenizer-path tokenizer.model --port 50052"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from grpc_health.v1 import health_pb2
from prometheus_client import CollectorRegistry

from llama_grpc.rpc import QUIET_S
from llama_grpc.server import ServerConfig, add_server_args, setup_logging, start_metrics
from tokenizer_svc.chat import DEFAULT_SYSTEM_PROMPT
from tokenizer_svc.core import Limits, TokenizerCore
from tokenizer_svc.server import build_server
from tokenizer_svc.tokenizer import Tokenizer, TokenizerError

logger = logging.getLogger("tokenizer_svc")


@dataclass(frozen=True)
class TokenizerConfig:
    """Everything the tokenizer service is started with."""

    server: ServerConfig
    tokenizer_path: Path
    limits: Limits
    system_prompt: str | None
    workers: int


def parse_args(argv: list[str] | None = None) -> tuple[TokenizerConfig, str]:
    """Flags → TokenizerConfig (and the log level)."""
    p = argparse.ArgumentParser(prog="python -m tokenizer_svc", description="Llama-2 tokenizer gRPC service")
    p.add_argument("--tokenizer-path", type=Path, required=True, help="sentencepiece tokenizer.model")
    p.add_argument("--max-texts", type=int, default=Limits.max_texts, help="texts or dialogs per request")
    p.add_argument("--max-text-bytes", type=int, default=Limits.max_text_bytes, help="UTF-8 bytes per text")
    p.add_argument("--max-tokens", type=int, default=Limits.max_tokens, help="ids per sequence to decode")
    sp = p.add_mutually_exclusive_group()
    sp.add_argument("--system-prompt", default=None, help="system prompt for dialogs without one")
    sp.add_argument("--system-prompt-file", type=Path, default=None, help="read --system-prompt from a file")
    sp.add_argument("--no-system-prompt", action="store_true", help="dialogs without a system message get none")
    p.add_argument("--workers", type=int, default=16, help="RPC worker threads")
    add_server_args(p, port=50052, host="127.0.0.1", metrics_port=9092)
    ns = p.parse_args(argv)
    if ns.no_system_prompt:
        system_prompt = None
    elif ns.system_prompt_file is not None:
        system_prompt = ns.system_prompt_file.read_text()
    else:
        system_prompt = DEFAULT_SYSTEM_PROMPT if ns.system_prompt is None else ns.system_prompt
    limits = Limits(max_texts=ns.max_texts, max_text_bytes=ns.max_text_bytes, max_tokens=ns.max_tokens)
    cfg = TokenizerConfig(ServerConfig.from_args(ns), ns.tokenizer_path, limits, system_prompt, ns.workers)
    return cfg, ns.log_level


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then drain within the grace period."""
    cfg, level = parse_args(argv)
    setup_logging(level)
    try:
        tokenizer = Tokenizer.from_file(cfg.tokenizer_path)
    except TokenizerError as e:
        logger.error("%s", e)
        return 2
    registry = CollectorRegistry()
    core = TokenizerCore(tokenizer, cfg.limits, cfg.system_prompt)
    server, port, health_servicer, tracker = build_server(core, cfg.server, registry, cfg.workers)
    stop_metrics = start_metrics(cfg.server, registry)
    logger.info(
        "tokenizer service on %s:%d (vocabulary %d, %s)",
        cfg.server.host,
        port,
        tokenizer.n_words,
        cfg.tokenizer_path,
    )
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    # With a timeout: the signal may land on a gRPC worker thread, and Python runs handlers only
    # in the main thread, which an untimed wait would keep blocked for good.
    while not stopping.wait(0.5):
        pass
    logger.info("stopping: draining for up to %.0f s", cfg.server.grace_s)
    health_servicer.enter_graceful_shutdown()
    tracker.drain()  # new calls get UNAVAILABLE; the ones in flight finish
    deadline = time.monotonic() + cfg.server.grace_s
    while not tracker.settled(QUIET_S) and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop(1.0).wait()
    stop_metrics()
    health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
