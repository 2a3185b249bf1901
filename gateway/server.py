"""The GatewayService servicer: protobuf to the core's types, one call into the core, and back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from gateway.core import GatewayCore, RowUpdate, Sampling
from gateway.downstream import Downstream
from llama.v1 import gateway_pb2 as pb
from llama.v1 import gateway_pb2_grpc, types_pb2
from llama_grpc.rpc import RpcTracker, rpc

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GatewayService"].full_name
_TEXT = pb.TextCompletionRequest | pb.StreamTextCompletionRequest
_CHAT = pb.ChatCompletionRequest | pb.StreamChatCompletionRequest


def sampling_from_proto(request: _TEXT | _CHAT) -> Sampling:
    """The sampling settings of any of the four completion requests (unset optionals are None)."""
    return Sampling(
        temperature=request.temperature if request.HasField("temperature") else None,
        top_p=request.top_p if request.HasField("top_p") else None,
        max_gen_len=request.max_gen_len if request.HasField("max_gen_len") else None,
        logprobs=request.logprobs,
        echo=getattr(request, "echo", False),
        seed=request.seed if request.HasField("seed") else None,
        stop=tuple(request.stop),
        ignore_eos=request.ignore_eos,
    )


async def gather(n: int, updates: AsyncIterator[RowUpdate]) -> list[RowUpdate]:
    """Concatenate each prompt's updates into one (the unary result)."""
    rows = [RowUpdate(i) for i in range(n)]
    async with contextlib.aclosing(updates) as it:
        async for u in it:
            row = rows[u.index]
            row.text += u.text
            row.pieces += u.pieces
            row.logprobs += u.logprobs
            if u.finish:
                row.finish, row.prompt_tokens, row.generated_tokens = u.finish, u.prompt_tokens, u.generated_tokens
    return rows


async def stream_fields(updates: AsyncIterator[RowUpdate]) -> AsyncIterator[dict]:
    """The fields both stream responses share, one dict per update."""
    async with contextlib.aclosing(updates) as it:
        async for u in it:
            yield {
                "index": u.index,
                "text": u.text,
                "tokens": u.pieces,
                "logprobs": u.logprobs,
                "finish_reason": u.finish,
                "token_count": u.new_tokens,
            }


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    """llama.v1.GatewayService over a GatewayCore."""

    def __init__(self, core: GatewayCore, tracker: RpcTracker) -> None:
        self.core = core
        self.tracker = tracker

    @rpc
    async def TextCompletion(
        self, request: pb.TextCompletionRequest, context: grpc.aio.ServicerContext
    ) -> pb.TextCompletionResponse:
        updates = self.core.complete_text(list(request.prompts), sampling_from_proto(request), context.time_remaining())
        rows = await gather(len(request.prompts), updates)
        return pb.TextCompletionResponse(
            predictions=[
                pb.CompletionPrediction(
                    generation=r.text,
                    tokens=r.pieces,
                    logprobs=r.logprobs,
                    finish_reason=r.finish,
                    prompt_token_count=r.prompt_tokens,
                    generation_token_count=r.generated_tokens,
                )
                for r in rows
            ]
        )

    @rpc
    async def ChatCompletion(
        self, request: pb.ChatCompletionRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChatCompletionResponse:
        updates = self.core.complete_chat(list(request.dialogs), sampling_from_proto(request), context.time_remaining())
        rows = await gather(len(request.dialogs), updates)
        return pb.ChatCompletionResponse(
            predictions=[
                pb.ChatPrediction(
                    generation=types_pb2.Message(role=types_pb2.ROLE_ASSISTANT, content=r.text),
                    tokens=r.pieces,
                    logprobs=r.logprobs,
                    finish_reason=r.finish,
                    prompt_token_count=r.prompt_tokens,
                    generation_token_count=r.generated_tokens,
                )
                for r in rows
            ]
        )

    @rpc
    async def StreamTextCompletion(
        self, request: pb.StreamTextCompletionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamTextCompletionResponse]:
        updates = self.core.complete_text(list(request.prompts), sampling_from_proto(request), context.time_remaining())
        async for u in stream_fields(updates):
            yield pb.StreamTextCompletionResponse(**u)

    @rpc
    async def StreamChatCompletion(
        self, request: pb.StreamChatCompletionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamChatCompletionResponse]:
        updates = self.core.complete_chat(list(request.dialogs), sampling_from_proto(request), context.time_remaining())
        async for u in stream_fields(updates):
            yield pb.StreamChatCompletionResponse(role=types_pb2.ROLE_ASSISTANT, **u)

    @rpc
    async def GetModelInfo(
        self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelInfoResponse:
        ds, limits = self.core.downstream, self.core.limits
        remaining = context.time_remaining()
        engine, tok = await asyncio.gather(ds.engine_info(remaining), ds.tokenizer_info(remaining))
        return pb.GetModelInfoResponse(
            model_name=engine.model_name,
            max_seq_len=engine.max_seq_len,
            max_batch_size=engine.max_batch_size,
            vocab_size=engine.vocab_size,
            bos_id=tok.bos_id,
            eos_id=tok.eos_id,
            world_size=engine.world_size,
            dtype=engine.dtype,
            device=engine.device,
            replicas=ds.ready_replicas(),
            max_stop=limits.max_stop,
            max_stop_bytes=limits.max_stop_bytes,
            default_temperature=limits.default_temperature,
            default_top_p=limits.default_top_p,
        )


async def _serving(stub: health_pb2_grpc.HealthStub, timeout: float) -> bool:
    try:
        resp = await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.aio.AioRpcError:
        return False
    return resp.status == health_pb2.HealthCheckResponse.SERVING


async def watch_health(downstream: Downstream, health: health_aio.HealthServicer, interval_s: float = 1.0) -> None:
    """Keep the gateway's health SERVING while the tokenizer and at least one model replica are."""
    tokenizer = health_pb2_grpc.HealthStub(downstream.tokenizer_channel)
    models = [health_pb2_grpc.HealthStub(r.channel) for r in downstream.replicas]
    last = None
    while True:
        results = await asyncio.gather(*(_serving(s, interval_s) for s in (tokenizer, *models)))
        up = results[0] and any(results[1:])
        status = health_pb2.HealthCheckResponse.SERVING if up else health_pb2.HealthCheckResponse.NOT_SERVING
        if status != last:
            for name in ("", SERVICE_NAME):
                await health.set(name, status)
            logger.info(
                "downstream %s: tokenizer %s, model replicas serving %d/%d",
                "up" if up else "DOWN",
                "up" if results[0] else "down",
                sum(results[1:]),
                len(models),
            )
            last = status
        await asyncio.sleep(interval_s)
