"""The ModelService servicer (rank 0): protobuf to GenerateParams, one call into the engine, and back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import grpc

from llama.v1 import model_pb2 as pb
from llama.v1 import model_pb2_grpc, types_pb2
from llama_grpc.errors import ServiceError
from llama_grpc.rpc import RpcTracker, rpc
from model_svc.engine import Engine, Event, GenerateParams
from model_svc.generation import Finish

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ModelService"].full_name
FINISH_TO_PROTO = {
    Finish.EOS: types_pb2.FINISH_REASON_EOS,
    Finish.LENGTH: types_pb2.FINISH_REASON_LENGTH,
    Finish.STOP: types_pb2.FINISH_REASON_STOP,
    Finish.CANCELLED: types_pb2.FINISH_REASON_CANCELLED,
}


def params_from_proto(request: pb.GenerateRequest | pb.StreamGenerateRequest) -> GenerateParams:
    """GenerateParams from either request message (they have the same fields)."""
    return GenerateParams(
        prompts=[list(t.ids) for t in request.prompt_tokens],
        max_gen_len=request.max_gen_len,
        temperature=request.temperature,
        top_p=request.top_p,
        logprobs=request.logprobs,
        echo=request.echo,
        seed=request.seed if request.HasField("seed") else None,
        stop_ids=tuple(request.stop_ids),
    )


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    """llama.v1.ModelService over an Engine."""

    def __init__(self, engine: Engine, tracker: RpcTracker, info: pb.GetEngineInfoResponse) -> None:
        self.engine = engine
        self.tracker = tracker
        self.info = info  # the static part of GetEngineInfo

    async def _events(self, params: GenerateParams, merge: bool = False) -> AsyncIterator[Event]:
        """Submit params and yield its events until every row has finished; cancel it if abandoned.

        merge: a row's tokens already waiting join the event before them (never a row's echo).
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | ServiceError] = asyncio.Queue()
        request = self.engine.submit(params, lambda item: loop.call_soon_threadsafe(queue.put_nowait, item))
        left = len(params.prompts)
        held: Event | ServiceError | None = None
        echoed: set[int] = set()  # rows whose echo event went out: later events of theirs may merge
        try:
            while left:
                item = held if held is not None else await queue.get()
                held = None
                # When this loop falls behind the engine, the tokens that piled up go as one message:
                # under load that spares gRPC (here and in the gateway) a message per token per row.
                while merge and isinstance(item, Event) and item.finish is None and not queue.empty():
                    nxt = queue.get_nowait()
                    same_row = isinstance(nxt, Event) and nxt.index == item.index
                    if not same_row or (params.echo and item.index not in echoed):  # never into an echo
                        held = nxt
                        break
                    item = Event(item.index, item.tokens + nxt.tokens, item.logprobs + nxt.logprobs, nxt.finish)
                if isinstance(item, ServiceError):
                    raise item
                echoed.add(item.index)
                if item.finish is not None:
                    left -= 1
                yield item
        finally:
            if left:  # the caller cancelled, its deadline passed, or the request failed
                self.engine.cancel(request)

    @rpc
    async def Generate(self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext) -> pb.GenerateResponse:
        params = params_from_proto(request)
        gens = [pb.Generation(prompt_token_count=len(p)) for p in params.prompts]
        async with contextlib.aclosing(self._events(params, merge=True)) as events:
            async for ev in events:
                gen = gens[ev.index]
                gen.tokens.extend(ev.tokens)
                gen.logprobs.extend(ev.logprobs)
                if ev.finish is not None:
                    gen.finish_reason = FINISH_TO_PROTO[ev.finish]
        for gen in gens:
            gen.generation_token_count = len(gen.tokens) - (gen.prompt_token_count if params.echo else 0)
        return pb.GenerateResponse(generations=gens)

    @rpc
    async def StreamGenerate(
        self, request: pb.StreamGenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamGenerateResponse]:
        events = self._events(params_from_proto(request), merge=request.merge_pending_tokens)
        async with contextlib.aclosing(events):
            async for ev in events:
                yield pb.StreamGenerateResponse(
                    index=ev.index,
                    tokens=ev.tokens,
                    logprobs=ev.logprobs,
                    finish_reason=FINISH_TO_PROTO[ev.finish] if ev.finish is not None else 0,
                )

    @rpc
    async def GetEngineInfo(
        self, request: pb.GetEngineInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetEngineInfoResponse:
        stats = self.engine.stats()
        info = pb.GetEngineInfoResponse()
        info.CopyFrom(self.info)
        info.active_rows, info.queued, info.steps = stats.active_rows, stats.queued, stats.steps
        return info
