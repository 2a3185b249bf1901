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
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
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
QUIET_S = 0.25  # a draining server stops once no RPC has been in flight for this long


def status_of(error: ServiceError) -> grpc.StatusCode:
    """The status code for a service error."""
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.UNKNOWN


class RpcTracker:
    """Every RPC's bookkeeping: counts by method and status code, latencies, RPCs in flight, draining."""

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
        self._lock = threading.Lock()
        self._active = 0
        self._idle_since: float | None = None
        self.draining = False

    def begin(self, method: str) -> None:
        """An RPC starts; while draining it is refused with UNAVAILABLE."""
        if self.draining:
            raise Unavailable(f"the {self.service} service is shutting down; retry on another instance")
        with self._lock:
            self._active += 1
        self.in_flight.labels(self.service, method).inc()

    def end(self, method: str) -> None:
        """An RPC that began has ended."""
        with self._lock:
            self._active -= 1
        self.in_flight.labels(self.service, method).dec()

    def record(self, method: str, code: grpc.StatusCode, started: float) -> None:
        """Count one finished RPC."""
        self.requests.labels(self.service, method, code.name).inc()
        self.duration.labels(self.service, method).observe(time.perf_counter() - started)

    async def drain(self, grace_s: float, idle: Callable[[], bool] = lambda: True) -> None:
        """Refuse new RPCs (UNAVAILABLE), then wait up to grace_s for those in flight to finish.

        It returns once nothing has been in flight for QUIET_S (and idle() holds): callers that
        arrive meanwhile get UNAVAILABLE from here, and retry elsewhere, rather than the
        transport's CANCELLED when the server stops.
        """
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while loop.time() < deadline and not (idle() and self.settled(QUIET_S)):
            await asyncio.sleep(0.05)

    def idle(self) -> bool:
        """No RPC in flight."""
        with self._lock:
            return self._active == 0

    def settled(self, quiet_s: float) -> bool:
        """Idle for the last quiet_s seconds (call repeatedly while draining)."""
        now = time.monotonic()
        if not self.idle():
            self._idle_since = None
            return False
        if self._idle_since is None:
            self._idle_since = now
        return now - self._idle_since >= quiet_s


class HasTracker(Protocol):
    """A servicer with an RpcTracker."""

    tracker: RpcTracker


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
    """One RPC: begun (refused while draining), then ended with its status code and duration."""

    def __init__(self, tracker: RpcTracker, method: str) -> None:
        self.tracker, self.method = tracker, method
        self.code = grpc.StatusCode.OK
        self.started = time.perf_counter()
        self.begun = False

    def begin(self) -> None:
        self.tracker.begin(self.method)
        self.begun = True

    def done(self) -> None:
        if self.begun:
            self.tracker.end(self.method)
        self.tracker.record(self.method, self.code, self.started)


def rpc(fn: F) -> F:
    """Wrap a servicer method (sync unary, async unary or async streaming) with errors and metrics."""
    method = fn.__name__

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream(self: HasTracker, request: Any, context: Any) -> AsyncIterator[Any]:
            tracked = _Tracked(self.tracker, method)
            try:
                tracked.begin()
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
        async def unary_async(self: HasTracker, request: Any, context: Any) -> Any:
            tracked = _Tracked(self.tracker, method)
            try:
                tracked.begin()
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
    def unary(self: HasTracker, request: Any, context: Any) -> Any:
        tracked = _Tracked(self.tracker, method)
        try:
            tracked.begin()
            return fn(self, request, context)
        except Exception as e:
            tracked.code, message = _classify(e, context, method)
            if message is None:
                raise
            context.abort(tracked.code, message)
        finally:
            tracked.done()

    return unary  # type: ignore[return-value]


def _parse(request_cls: type[Message], raw: bytes) -> Message | None:
    try:
        return request_cls.FromString(raw)
    except DecodeError:
        return None


def _bad_message(request_cls: type[Message]) -> str:
    return f"request is not a valid {request_cls.DESCRIPTOR.full_name} message (protobuf parse error)"


def _handler(servicer: Any, method: MethodDescriptor) -> grpc.RpcMethodHandler:
    """A method handler that parses the request bytes itself (see add_servicer)."""
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    fn = getattr(servicer, method.name)
    tracker: RpcTracker = servicer.tracker

    def rejected() -> str:
        tracker.record(method.name, grpc.StatusCode.INVALID_ARGUMENT, time.perf_counter())
        return _bad_message(request_cls)

    if method.server_streaming:

        async def stream(raw: bytes, context: Any) -> AsyncIterator[Any]:
            request = _parse(request_cls, raw)
            if request is None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, rejected())
            async for item in fn(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(stream, response_serializer=response_cls.SerializeToString)

    if inspect.iscoroutinefunction(fn):

        async def unary_async(raw: bytes, context: Any) -> Any:
            request = _parse(request_cls, raw)
            if request is None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, rejected())
            return await fn(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_async, response_serializer=response_cls.SerializeToString)

    def unary(raw: bytes, context: Any) -> Any:
        request = _parse(request_cls, raw)
        if request is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, rejected())
        return fn(request, context)

    return grpc.unary_unary_rpc_method_handler(unary, response_serializer=response_cls.SerializeToString)


def add_servicer(server: grpc.Server | grpc.aio.Server, servicer: HasTracker, service: ServiceDescriptor) -> None:
    """Register servicer's RPCs of service, parsing each request here.

    The generated add_*_to_server lets grpc deserialize requests, and grpc answers bytes that do
    not parse with INTERNAL; parsed here, they are the client's mistake: INVALID_ARGUMENT.
    """
    handlers = {m.name: _handler(servicer, m) for m in service.methods}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
