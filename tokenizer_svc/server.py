"""The TokenizerService servicer: protobuf to domain types, one call into the core, and back."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio
from prometheus_client import CollectorRegistry

from llama.v1 import tokenizer_pb2 as pb
from llama.v1 import tokenizer_pb2_grpc, types_pb2
from llama_grpc.rpc import RpcTracker, add_servicer, rpc
from llama_grpc.server import ServerConfig, add_health_and_reflection, bind, grpc_options, start_metrics
from tokenizer_svc.chat import Message
from tokenizer_svc.core import TokenizerCore

logger = logging.getLogger(__name__)

T = TypeVar("T")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TokenizerService"].full_name
_ROLE_NAMES = {types_pb2.ROLE_SYSTEM: "system", types_pb2.ROLE_USER: "user", types_pb2.ROLE_ASSISTANT: "assistant"}


def role_name(value: int) -> str:
    """'system', 'user' or 'assistant'; anything else named so the core rejects it clearly."""
    if value in _ROLE_NAMES:
        return _ROLE_NAMES[value]
    if value in types_pb2.Role.values():
        return types_pb2.Role.Name(value)  # ROLE_UNSPECIFIED
    return f"unknown role value {value}"


def dialogs_from_proto(dialogs: Sequence[types_pb2.Dialog]) -> list[list[Message]]:
    """Domain dialogs from protobuf ones."""
    return [[Message(role_name(m.role), m.content) for m in d.messages] for d in dialogs]


# Encoding a typical prompt takes tens of microseconds: cheaper on the event loop than a hand-off
# to a thread. Requests past this many bytes of text run on a worker thread (sentencepiece
# releases the GIL), so one large request does not stall every other caller.
INLINE_BYTES = 16 * 1024


async def _call(size: int, fn: Callable[..., T], *args: Any) -> T:
    """fn(*args), inline when the request is small, on a worker thread when it is large."""
    return fn(*args) if size <= INLINE_BYTES else await asyncio.to_thread(fn, *args)


class TokenizerServicer(tokenizer_pb2_grpc.TokenizerServiceServicer):
    """llama.v1.TokenizerService over a TokenizerCore."""

    def __init__(self, core: TokenizerCore, tracker: RpcTracker) -> None:
        self.core = core
        self.tracker = tracker

    @rpc
    async def Encode(self, request: pb.EncodeRequest, context: grpc.aio.ServicerContext) -> pb.EncodeResponse:
        ids = await _call(request.ByteSize(), self.core.encode, list(request.texts), request.bos, request.eos)
        return pb.EncodeResponse(tokens=[types_pb2.TokenIds(ids=t) for t in ids])

    @rpc
    async def Decode(self, request: pb.DecodeRequest, context: grpc.aio.ServicerContext) -> pb.DecodeResponse:
        seqs = [list(t.ids) for t in request.tokens]
        texts = await _call(request.ByteSize(), self.core.decode, seqs)
        pieces = []
        if request.pieces:
            pieces = [pb.TokenPieces(pieces=p) for p in await _call(request.ByteSize(), self.core.pieces, seqs)]
        return pb.DecodeResponse(texts=texts, pieces=pieces)

    @rpc
    async def EncodeDialogs(
        self, request: pb.EncodeDialogsRequest, context: grpc.aio.ServicerContext
    ) -> pb.EncodeDialogsResponse:
        dialogs = dialogs_from_proto(request.dialogs)
        ids = await _call(request.ByteSize(), self.core.encode_dialogs, dialogs)
        return pb.EncodeDialogsResponse(tokens=[types_pb2.TokenIds(ids=t) for t in ids])

    @rpc
    async def GetTokenizerInfo(
        self, request: pb.GetTokenizerInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTokenizerInfoResponse:
        tok, limits = self.core.tokenizer, self.core.limits
        return pb.GetTokenizerInfoResponse(
            vocab_size=tok.n_words,
            bos_id=tok.bos_id,
            eos_id=tok.eos_id,
            pad_id=tok.pad_id,
            model_sha256=tok.sha256,
            max_texts=limits.max_texts,
            max_text_bytes=limits.max_text_bytes,
            default_system_prompt=self.core.system_prompt or "",
        )

    @rpc
    async def GetTokenizerModel(
        self, request: pb.GetTokenizerModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTokenizerModelResponse:
        tok = self.core.tokenizer
        return pb.GetTokenizerModelResponse(model=tok.model_proto, model_sha256=tok.sha256)


async def serve(core: TokenizerCore, cfg: ServerConfig, registry: CollectorRegistry) -> int:
    """Serve core until SIGTERM or SIGINT, then drain within the grace period; return the exit code."""
    server = grpc.aio.server(options=grpc_options(cfg))
    tracker = RpcTracker(registry, "tokenizer")
    add_servicer(server, TokenizerServicer(core, tracker), pb.DESCRIPTOR.services_by_name["TokenizerService"])
    health = health_aio.HealthServicer()
    add_health_and_reflection(server, health, [SERVICE_NAME])
    port = bind(server, cfg)
    await server.start()
    stop_metrics = start_metrics(cfg, registry)
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    tok = core.tokenizer
    logger.info("tokenizer service on %s:%d (vocabulary %d)", cfg.host, port, tok.n_words)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("stopping: draining for up to %.0f s", cfg.grace_s)
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await tracker.drain(cfg.grace_s)
    await server.stop(1.0)
    stop_metrics()
    return 0
