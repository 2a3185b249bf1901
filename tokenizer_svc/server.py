"""The TokenizerService servicer: protobuf to domain types, one call into the core, and back."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2
from prometheus_client import CollectorRegistry

from llama.v1 import tokenizer_pb2 as pb
from llama.v1 import tokenizer_pb2_grpc, types_pb2
from llama_grpc.rpc import RpcTracker, add_servicer, rpc
from llama_grpc.server import ServerConfig, add_health_and_reflection, bind, grpc_options
from tokenizer_svc.chat import Message
from tokenizer_svc.core import TokenizerCore

logger = logging.getLogger(__name__)

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


class TokenizerServicer(tokenizer_pb2_grpc.TokenizerServiceServicer):
    """llama.v1.TokenizerService over a TokenizerCore."""

    def __init__(self, core: TokenizerCore, tracker: RpcTracker) -> None:
        self.core = core
        self.tracker = tracker

    @rpc
    def Encode(self, request: pb.EncodeRequest, context: grpc.ServicerContext) -> pb.EncodeResponse:
        ids = self.core.encode(list(request.texts), request.bos, request.eos)
        return pb.EncodeResponse(tokens=[types_pb2.TokenIds(ids=t) for t in ids])

    @rpc
    def Decode(self, request: pb.DecodeRequest, context: grpc.ServicerContext) -> pb.DecodeResponse:
        seqs = [list(t.ids) for t in request.tokens]
        texts = self.core.decode(seqs)
        pieces = [pb.TokenPieces(pieces=p) for p in self.core.pieces(seqs)] if request.pieces else []
        return pb.DecodeResponse(texts=texts, pieces=pieces)

    @rpc
    def EncodeDialogs(
        self, request: pb.EncodeDialogsRequest, context: grpc.ServicerContext
    ) -> pb.EncodeDialogsResponse:
        ids = self.core.encode_dialogs(dialogs_from_proto(request.dialogs))
        return pb.EncodeDialogsResponse(tokens=[types_pb2.TokenIds(ids=t) for t in ids])

    @rpc
    def GetTokenizerInfo(
        self, request: pb.GetTokenizerInfoRequest, context: grpc.ServicerContext
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
    def GetTokenizerModel(
        self, request: pb.GetTokenizerModelRequest, context: grpc.ServicerContext
    ) -> pb.GetTokenizerModelResponse:
        tok = self.core.tokenizer
        return pb.GetTokenizerModelResponse(model=tok.model_proto, model_sha256=tok.sha256)


def build_server(core: TokenizerCore, cfg: ServerConfig, registry: CollectorRegistry, workers: int) -> Any:
    """A started gRPC server for core with health SERVING; returns (server, bound port, health, tracker)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=grpc_options(cfg))
    servicer = TokenizerServicer(core, RpcTracker(registry, "tokenizer"))
    add_servicer(server, servicer, pb.DESCRIPTOR.services_by_name["TokenizerService"])
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    add_health_and_reflection(server, health_servicer, [SERVICE_NAME])
    port = bind(server, cfg)
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer, servicer.tracker
