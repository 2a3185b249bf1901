"""The gateway's core: validate, tokenize, generate one model stream per prompt, decode.

Every prompt gets a StreamGenerate call of its own (seed + i for prompt i, as the model would
give it in a batch), so a row that meets a stop string can be cancelled alone: its model rows
leave the batch at once. Unary RPCs gather the same row updates that streams send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc

from gateway.downstream import Downstream, Replica
from gateway.metrics import GatewayMetrics
from gateway.rows import Delta, RowText
from llama.v1 import model_pb2, tokenizer_pb2, types_pb2
from llama_grpc.errors import InvalidArgument
from tokenizer_svc.tokenizer import Tokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Request limits and defaults of the gateway."""

    max_stop: int = 8  # stop strings per request
    max_stop_bytes: int = 256  # UTF-8 bytes per stop string
    default_temperature: float = 0.6  # the seed's defaults
    default_top_p: float = 0.9


@dataclass(frozen=True)
class Sampling:
    """A request's sampling settings as sent (None: unset)."""

    temperature: float | None
    top_p: float | None
    max_gen_len: int | None
    logprobs: bool
    echo: bool
    seed: int | None
    stop: tuple[str, ...]
    ignore_eos: bool = False


@dataclass
class RowUpdate:
    """New output of one prompt: text, per-token pieces and logprobs, and the end when it comes."""

    index: int
    text: str = ""
    pieces: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: int = types_pb2.FINISH_REASON_UNSPECIFIED
    prompt_tokens: int = 0
    generated_tokens: int = 0  # in the whole row so far
    new_tokens: int = 0  # generated tokens this update covers


def check_sampling(s: Sampling, limits: Limits) -> None:
    """INVALID_ARGUMENT for values no engine could accept, before any downstream call."""
    if s.temperature is not None and not (math.isfinite(s.temperature) and s.temperature >= 0):
        raise InvalidArgument(f"temperature must be finite and >= 0, got {s.temperature}")
    if s.top_p is not None and not (0 < s.top_p <= 1):
        raise InvalidArgument(f"top_p must be in (0, 1], got {s.top_p}")
    if s.max_gen_len is not None and s.max_gen_len < 1:
        raise InvalidArgument(f"max_gen_len must be at least 1, got {s.max_gen_len}")
    if len(s.stop) > limits.max_stop:
        raise InvalidArgument(f"stop: {len(s.stop)} strings, at most {limits.max_stop} (--max-stop)")
    for i, text in enumerate(s.stop):
        if not text:
            raise InvalidArgument(f"stop[{i}] is empty")
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > limits.max_stop_bytes:
            raise InvalidArgument(f"stop[{i}]: {size} bytes, at most {limits.max_stop_bytes} (--max-stop-bytes)")


class GatewayCore:
    """Text and chat completion over the downstream services."""

    def __init__(self, downstream: Downstream, limits: Limits, metrics: GatewayMetrics) -> None:
        self.downstream = downstream
        self.limits = limits
        self.metrics = metrics

    async def _limits(self, field_name: str, n: int, s: Sampling, remaining: float | None) -> tuple[int, int]:
        """Check the batch and max_gen_len against the engine; return (max_seq_len, max_gen_len)."""
        if n == 0:
            raise InvalidArgument(f"{field_name}: at least one is required")
        info = await self.downstream.engine_info(remaining)
        if n > info.max_batch_size:
            raise InvalidArgument(f"{field_name}: {n} given, at most max_batch_size {info.max_batch_size}")
        max_gen_len = info.max_seq_len - 1 if s.max_gen_len is None else s.max_gen_len
        if max_gen_len >= info.max_seq_len:
            raise InvalidArgument(
                f"max_gen_len must be 1 to max_seq_len - 1 = {info.max_seq_len - 1}, got {max_gen_len}"
            )
        return info.max_seq_len, max_gen_len

    async def _check_sizes(self, fields: Sequence[tuple[str, str]], remaining: float | None) -> None:
        """Texts over the tokenizer service's byte limit, named by their field here."""
        limit = (await self.downstream.tokenizer_info(remaining)).max_text_bytes
        for name, text in fields:
            size = len(text.encode("utf-8", errors="surrogatepass"))
            if limit and size > limit:
                raise InvalidArgument(f"{name}: {size} bytes, at most {limit} (the tokenizer's --max-text-bytes)")

    async def complete_text(
        self, prompts: Sequence[str], s: Sampling, remaining: float | None
    ) -> AsyncIterator[RowUpdate]:
        """Continue each prompt (encoded with BOS, as the seed's text_completion)."""
        started = time.perf_counter()
        check_sampling(s, self.limits)
        max_seq_len, max_gen_len = await self._limits("prompts", len(prompts), s, remaining)
        await self._check_sizes([(f"prompts[{i}]", p) for i, p in enumerate(prompts)], remaining)
        await self.downstream.tokenizer_ready(remaining)
        resp = await self.downstream.tokenizer_stub.Encode(
            tokenizer_pb2.EncodeRequest(texts=list(prompts), bos=True), timeout=self.downstream.timeout(remaining)
        )
        tokens = [list(t.ids) for t in resp.tokens]
        async for update in self._generate("prompts", tokens, s, max_seq_len, max_gen_len, remaining, started):
            yield update

    async def complete_chat(
        self, dialogs: Sequence[types_pb2.Dialog], s: Sampling, remaining: float | None
    ) -> AsyncIterator[RowUpdate]:
        """Answer each dialog (rendered in the Llama-2 chat format by the tokenizer service)."""
        started = time.perf_counter()
        check_sampling(s, self.limits)
        max_seq_len, max_gen_len = await self._limits("dialogs", len(dialogs), s, remaining)
        contents = [
            (f"dialogs[{i}].messages[{j}].content", m.content)
            for i, d in enumerate(dialogs)
            for j, m in enumerate(d.messages)
        ]
        await self._check_sizes(contents, remaining)
        await self.downstream.tokenizer_ready(remaining)
        resp = await self.downstream.tokenizer_stub.EncodeDialogs(
            tokenizer_pb2.EncodeDialogsRequest(dialogs=list(dialogs)), timeout=self.downstream.timeout(remaining)
        )
        tokens = [list(t.ids) for t in resp.tokens]
        async for update in self._generate("dialogs", tokens, s, max_seq_len, max_gen_len, remaining, started):
            yield update

    async def _generate(
        self,
        field_name: str,
        prompts: list[list[int]],
        s: Sampling,
        max_seq_len: int,
        max_gen_len: int,
        remaining: float | None,
        started: float,
    ) -> AsyncIterator[RowUpdate]:
        for i, p in enumerate(prompts):
            if len(p) >= max_seq_len:
                raise InvalidArgument(
                    f"{field_name}[{i}] is {len(p)} tokens: max_seq_len {max_seq_len} leaves no room to generate "
                    f"(at most {max_seq_len - 1} prompt tokens)"
                )
        tokenizer = await self.downstream.tokenizer(remaining)
        eos_id = (await self.downstream.tokenizer_info(remaining)).eos_id
        rows = [self._row(i, p, s, max_gen_len, eos_id, tokenizer, remaining) for i, p in enumerate(prompts)]
        # One prompt, the common case, streams straight through; several are merged as they come.
        updates = rows[0] if len(rows) == 1 else self._merge(rows)
        first: set[int] = set()
        last_time: dict[int, float] = {}
        async with contextlib.aclosing(updates) as it:
            async for item in it:
                now = time.perf_counter()
                if item.text or item.pieces or item.new_tokens:
                    if item.index not in first:
                        first.add(item.index)
                        self.metrics.ttft.observe(now - started)
                    else:
                        self.metrics.itl.observe(now - last_time[item.index])
                    last_time[item.index] = now
                if item.finish:
                    self.metrics.prompt_tokens.inc(item.prompt_tokens)
                    self.metrics.generated_tokens.inc(item.generated_tokens)
                yield item

    @staticmethod
    async def _merge(rows: list[AsyncIterator[RowUpdate]]) -> AsyncIterator[RowUpdate]:
        """Interleave the rows' updates in arrival order; the first failure fails them all."""
        queue: asyncio.Queue[RowUpdate | BaseException | None] = asyncio.Queue()

        async def pump(row: AsyncIterator[RowUpdate]) -> None:
            try:
                async for update in row:
                    await queue.put(update)
                await queue.put(None)
            except asyncio.CancelledError:
                raise
            except BaseException as e:
                await queue.put(e)

        tasks = [asyncio.create_task(pump(r)) for r in rows]
        try:
            left = len(tasks)
            while left:
                item = await queue.get()
                if item is None:
                    left -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _row(
        self,
        index: int,
        prompt: list[int],
        s: Sampling,
        max_gen_len: int,
        eos_id: int,
        tokenizer: Tokenizer,
        remaining: float | None,
    ) -> AsyncIterator[RowUpdate]:
        """One prompt's updates, streamed from a model replica."""
        request = model_pb2.StreamGenerateRequest(
            prompt_tokens=[types_pb2.TokenIds(ids=prompt)],
            max_gen_len=max_gen_len,
            temperature=self.limits.default_temperature if s.temperature is None else s.temperature,
            top_p=self.limits.default_top_p if s.top_p is None else s.top_p,
            logprobs=s.logprobs,
            echo=s.echo,
            stop_ids=[] if s.ignore_eos else [eos_id],
            merge_pending_tokens=True,
        )
        if s.seed is not None:
            request.seed = (s.seed + index) % 2**64
        row = RowText(tokenizer, s.stop)
        replica = await self.downstream.pick_replica(remaining)
        try:
            async for update in self._stream(replica, request, row, index, len(prompt), s.echo, remaining):
                yield update
        except grpc.aio.AioRpcError as e:
            # A replica that went away before answering anything: try once on another one.
            if e.code() != grpc.StatusCode.UNAVAILABLE or row.tokens or len(self.downstream.replicas) < 2:
                raise
            logger.warning("model replica %s unavailable; retrying on another", replica.target)
            replica = await self.downstream.pick_replica(remaining, avoid=replica)
            async for update in self._stream(replica, request, row, index, len(prompt), s.echo, remaining):
                yield update

    async def _stream(
        self,
        replica: Replica,
        request: model_pb2.StreamGenerateRequest,
        row: RowText,
        index: int,
        prompt_len: int,
        echo: bool,
        remaining: float | None,
    ) -> AsyncIterator[RowUpdate]:
        call = replica.stub.StreamGenerate(request, timeout=self.downstream.timeout(remaining))
        finished = False
        try:
            first = True
            async for ev in call:
                is_echo = echo and first
                delta = row.add(ev.tokens, ev.logprobs, echo=is_echo)
                first = False
                finish = ev.finish_reason
                if delta.stopped:
                    finish = types_pb2.FINISH_REASON_STOP
                elif finish:
                    tail = row.finish()
                    delta = Delta(delta.text + tail.text, delta.pieces, delta.logprobs)
                generated = len(row.tokens) - (prompt_len if echo else 0)
                new = 0 if is_echo else len(ev.tokens)
                update = RowUpdate(index, delta.text, delta.pieces, delta.logprobs, finish, prompt_len, generated, new)
                if finish or update.text or update.pieces or new:
                    yield update
                if delta.stopped:
                    return
                # After the last event the model ends the call by itself: read on to that end rather
                # than cancel, which the model would count as a CANCELLED row.
                finished = finish != types_pb2.FINISH_REASON_UNSPECIFIED
        finally:
            if not finished:
                call.cancel()  # a stop string ended the row, or the caller is gone: free the model row
