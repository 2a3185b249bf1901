"""One place that turns errors into status codes and counts every RPC by method and code.

Servicer methods are wrapped with `@rpc`: ServiceError subclasses become their status code with
their message, a downstream gRPC error passes through with its own code and details, and
anything else is logged here and becomes INTERNAL with no traceback in the status message.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llama_grpc.errors import InvalidArgument, ResourceExhausted, ServiceError, Unauthenticated, Unavailable

logger = logging.getLogger(__name__)

STATUS_OF: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}
INTERNAL_MESSAGE = "internal error; the service logged the details"


def status_of(error: ServiceError) -> grpc.StatusCode:
    """The status code for a service error."""
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.UNKNOWN


class RpcMetrics:
    """Request counts by method and status code, latencies, and RPCs in flight."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.requests = Counter(
            "llama_rpc_requests",
            "RPCs handled, by method and status code",
            ["service", "method", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "llama_rpc_duration_seconds",
            "Time from an RPC's start to its end",
            ["service", "method"],
            registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.in_flight = Gauge("llama_rpc_in_flight", "RPCs being handled", ["service", "method"], registry=registry)

    def record(self, method: str, code: grpc.StatusCode, started: float) -> None:
        """Count one finished RPC."""
        self.requests.labels(self.service, method, code.name).inc()
        self.duration.labels(self.service, method).observe(time.perf_counter() - started)


class HasMetrics(Protocol):
    """A servicer with RpcMetrics."""

    metrics: RpcMetrics


F = TypeVar("F", bound=Callable[..., Any])


def _classify(error: BaseException, context: Any, method: str) -> tuple[grpc.StatusCode, str | None]:
    """The status for an error raised by a handler; a message of None means: re-raise as it is."""
    if isinstance(error, ServiceError):
        return status_of(error), str(error)
    if isinstance(error, grpc.RpcError) and callable(getattr(error, "code", None)):
        details = error.details() if callable(getattr(error, "details", None)) else None
        return error.code(), details or error.code().name
    if isinstance(error, asyncio.CancelledError | GeneratorExit):  # the caller went away
        return grpc.StatusCode.CANCELLED, None
    code = context.code() if callable(getattr(context, "code", None)) else None
    if code is not None and code != grpc.StatusCode.OK:  # the handler aborted with its own status
        return code, None
    logger.exception("%s failed", method)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


class _Tracked:
    """Counts one RPC in flight, then records its status code and duration."""

    def __init__(self, metrics: RpcMetrics, method: str) -> None:
        self.metrics, self.method = metrics, method
        self.code = grpc.StatusCode.OK
        self.started = time.perf_counter()
        metrics.in_flight.labels(metrics.service, method).inc()

    def done(self) -> None:
        self.metrics.in_flight.labels(self.metrics.service, self.method).dec()
        self.metrics.record(self.method, self.code, self.started)


def rpc(fn: F) -> F:
    """Wrap a servicer method (sync unary, async unary or async streaming) with errors and metrics."""
    method = fn.__name__

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream(self: HasMetrics, request: Any, context: Any) -> AsyncIterator[Any]:
            tracked = _Tracked(self.metrics, method)
            try:
                async for item in fn(self, request, context):
                    yield item
            except BaseException as e:
                tracked.code, message = _classify(e, context, method)
                if message is None:
                    raise
                await context.abort(tracked.code, message)
            finally:
                tracked.done()

        return stream  # type: ignore[return-value]

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def unary_async(self: HasMetrics, request: Any, context: Any) -> Any:
            tracked = _Tracked(self.metrics, method)
            try:
                return await fn(self, request, context)
            except BaseException as e:
                tracked.code, message = _classify(e, context, method)
                if message is None:
                    raise
                await context.abort(tracked.code, message)
            finally:
                tracked.done()

        return unary_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def unary(self: HasMetrics, request: Any, context: Any) -> Any:
        tracked = _Tracked(self.metrics, method)
        try:
            return fn(self, request, context)
        except Exception as e:
            tracked.code, message = _classify(e, context, method)
            if message is None:
                raise
            context.abort(tracked.code, message)
        finally:
            tracked.done()

    return unary  # type: ignore[return-value]
