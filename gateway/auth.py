"""Optional API keys: `authorization: Bearer KEY` on every RPC but health."""

from __future__ import annotations

import hmac
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

_OPEN_PREFIX = "/grpc.health.v1.Health/"
ENV_VAR = "LLAMA_GRPC_API_KEYS"


def load_keys(flag_keys: Iterable[str], keys_file: Path | None) -> frozenset[str]:
    """Keys from --api-key flags, a file (one per line, # comments) and $LLAMA_GRPC_API_KEYS (comma list)."""
    keys = {k.strip() for k in flag_keys if k.strip()}
    if keys_file is not None:
        for line in keys_file.read_text().splitlines():
            key = line.split("#", 1)[0].strip()
            if key:
                keys.add(key)
    keys |= {k.strip() for k in os.environ.get(ENV_VAR, "").split(",") if k.strip()}
    return frozenset(keys)


def _deny(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as handler that only answers UNAUTHENTICATED."""

    async def abort(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator

    kw = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(abort_stream, **kw)
    if handler.stream_stream:  # server reflection
        return grpc.stream_stream_rpc_method_handler(abort_stream, **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(abort, **kw)
    return grpc.unary_unary_rpc_method_handler(abort, **kw)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without a configured key with UNAUTHENTICATED; health stays open."""

    def __init__(self, keys: frozenset[str]) -> None:
        self.keys = [k.encode() for k in keys]

    def _allowed(self, metadata: Iterable[tuple[str, Any]]) -> bool:
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                given = value.removeprefix("Bearer ").strip().encode()
                return any(hmac.compare_digest(given, k) for k in self.keys)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(_OPEN_PREFIX):
            return handler
        if self._allowed(handler_call_details.invocation_metadata or ()):
            return handler
        return _deny(handler, "missing or unknown API key: send metadata 'authorization: Bearer <key>'")
