"""python -m tokenizer_svc --tokenizer-path tokenizer.model --port 50052"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from llama_grpc.server import ServerConfig, add_server_args, setup_logging
from tokenizer_svc.chat import DEFAULT_SYSTEM_PROMPT
from tokenizer_svc.core import Limits, TokenizerCore
from tokenizer_svc.server import serve
from tokenizer_svc.tokenizer import Tokenizer, TokenizerError

logger = logging.getLogger("tokenizer_svc")


@dataclass(frozen=True)
class TokenizerConfig:
    """Everything the tokenizer service is started with."""

    server: ServerConfig
    tokenizer_path: Path
    limits: Limits
    system_prompt: str | None


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
    add_server_args(p, port=50052, host="127.0.0.1", metrics_port=9092)
    ns = p.parse_args(argv)
    if ns.no_system_prompt:
        system_prompt = None
    elif ns.system_prompt_file is not None:
        system_prompt = ns.system_prompt_file.read_text()
    else:
        system_prompt = DEFAULT_SYSTEM_PROMPT if ns.system_prompt is None else ns.system_prompt
    limits = Limits(max_texts=ns.max_texts, max_text_bytes=ns.max_text_bytes, max_tokens=ns.max_tokens)
    cfg = TokenizerConfig(ServerConfig.from_args(ns), ns.tokenizer_path, limits, system_prompt)
    return cfg, ns.log_level


def main(argv: list[str] | None = None) -> int:
    """Load the tokenizer and serve it."""
    cfg, level = parse_args(argv)
    setup_logging(level)
    try:
        tokenizer = Tokenizer.from_file(cfg.tokenizer_path)
    except TokenizerError as e:
        logger.error("%s", e)
        return 2
    core = TokenizerCore(tokenizer, cfg.limits, cfg.system_prompt)
    return asyncio.run(serve(core, cfg.server, CollectorRegistry()))


if __name__ == "__main__":
    raise SystemExit(main())
