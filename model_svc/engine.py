"""Continuous batching on rank 0: requests join and leave the running batch between decode steps.

The KV cache has max_batch_size slots. Running rows always fill slots 0 .. n-1: when rows leave,
the last rows move into the holes (a copy of their cached positions, done by every rank at the
start of the next step), so attention reads the cache as a plain view. Each step: slot moves,
one decode token for every running row, then the prompts of newly admitted rows are prefilled;
every row then samples its next token with its own temperature, top_p and generator.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from llama_grpc.errors import InvalidArgument, ResourceExhausted, ServiceError, Unavailable
from model_svc.distributed import DistContext
from model_svc.generation import Finish, check_generate_args, make_generator, sample
from model_svc.metrics import EngineMetrics
from model_svc.model import Transformer
from model_svc.plan import PlanKind, Prefill, StepLogits, StepPlan, broadcast_plan, execute

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """Scheduling limits."""

    max_queue: int = 64  # requests waiting for rows; past it RESOURCE_EXHAUSTED
    max_prefill_tokens: int = 2048  # prompt tokens admitted per step (one larger request still runs alone)
    max_stop_ids: int = 64
    heartbeat_s: float = 1.0  # an idle group still meets this often, so a dead rank is seen


@dataclass(frozen=True)
class GenerateParams:
    """One request's prompts and sampling settings, all explicit."""

    prompts: list[list[int]]
    max_gen_len: int
    temperature: float
    top_p: float
    logprobs: bool
    echo: bool
    seed: int | None
    stop_ids: tuple[int, ...]


@dataclass
class Event:
    """Progress of one row: new tokens (the prompt on an echo event), their logprobs, the end."""

    index: int
    tokens: list[int]
    logprobs: list[float]
    finish: Finish | None = None


Sink = Callable[[Event | ServiceError], None]


class Request:
    """A submitted request: its parameters and where its events go (called on the engine thread)."""

    def __init__(self, params: GenerateParams, sink: Sink) -> None:
        self.params = params
        self.sink = sink
        self.cancelled = False
        self.arrived = time.perf_counter()


@dataclass(eq=False)
class Row:
    """One prompt of a request, living in a KV-cache slot."""

    request: Request
    index: int
    prompt: list[int]
    slot: int
    limit: int  # the row's total length: min(max_seq_len, len(prompt) + max_gen_len)
    generator: torch.Generator
    pos: int = 0  # positions held in the cache
    last_token: int = -1
    generated: list[int] = field(default_factory=list)
    last_time: float = 0.0
    done: bool = False


@dataclass(frozen=True)
class EngineStats:
    """A snapshot for GetEngineInfo."""

    active_rows: int
    queued: int
    steps: int


class Engine:
    """The scheduler: rank 0 plans every step, every rank executes it."""

    def __init__(self, model: Transformer, cfg: EngineConfig, ctx: DistContext, metrics: EngineMetrics) -> None:
        self.model = model
        self.params = model.params
        self.cfg = cfg
        self.ctx = ctx
        self.metrics = metrics
        self.rows: list[Row] = []  # rows[i] lives in slot i
        self.waiting: collections.deque[Request] = collections.deque()
        self.pending_moves: list[tuple[int, int, int]] = []
        self.cv = threading.Condition()
        self.draining = False
        self.stopping = False
        self.failure: BaseException | None = None
        self.finished = threading.Event()  # run() has returned
        self.on_failure: Callable[[], None] | None = None
        self.steps = 0

    # --- called from the gRPC side -----------------------------------------------------------

    def submit(self, params: GenerateParams, sink: Sink) -> Request:
        """Queue a request, or raise InvalidArgument, ResourceExhausted or Unavailable at once."""
        p = self.params
        check_generate_args(
            params.prompts,
            params.max_gen_len,
            params.temperature,
            params.top_p,
            p.max_seq_len,
            p.max_batch_size,
            p.vocab_size,
        )
        if len(params.stop_ids) > self.cfg.max_stop_ids:
            raise InvalidArgument(f"stop_ids: {len(params.stop_ids)} ids, at most {self.cfg.max_stop_ids}")
        bad = next((t for t in params.stop_ids if not 0 <= t < p.vocab_size), None)
        if bad is not None:
            raise InvalidArgument(f"stop_ids holds {bad}, outside the vocabulary [0, {p.vocab_size})")
        request = Request(params, sink)
        with self.cv:
            if self.failure is not None:
                raise Unavailable(f"the model group failed: {self.failure}")
            if self.draining or self.stopping:
                raise Unavailable("the model service is shutting down; retry on another replica")
            if len(self.waiting) >= self.cfg.max_queue:
                raise ResourceExhausted(
                    f"queue full: {len(self.waiting)} requests waiting (--max-queue {self.cfg.max_queue}); retry later"
                )
            self.waiting.append(request)
            self.metrics.queued.set(len(self.waiting))
            self.cv.notify()
        return request

    def cancel(self, request: Request) -> None:
        """The caller is gone: its rows leave the batch at the next step."""
        with self.cv:
            request.cancelled = True
            self.cv.notify()

    def stats(self) -> EngineStats:
        """Rows running, requests waiting, steps run."""
        with self.cv:
            return EngineStats(len(self.rows), len(self.waiting), self.steps)

    def begin_drain(self) -> None:
        """Refuse new requests (UNAVAILABLE); running and queued ones go on."""
        with self.cv:
            self.draining = True

    def idle(self) -> bool:
        """Nothing running or waiting."""
        with self.cv:
            return not self.rows and not self.waiting

    def stop(self) -> None:
        """End run(): what is left gets UNAVAILABLE, and the followers are told to exit."""
        with self.cv:
            self.stopping = True
            self.cv.notify()

    # --- the engine thread -------------------------------------------------------------------

    def run(self) -> None:
        """Plan, broadcast and execute steps until stop() or a failure of the group."""
        try:
            while True:
                plan = self._next_plan()
                if self.ctx.world_size > 1:
                    broadcast_plan(plan, self.ctx.control_group)
                if plan.kind is PlanKind.SHUTDOWN:
                    return
                if plan.kind is PlanKind.STEP:
                    started = time.perf_counter()
                    logits = execute(self.model, plan, self.ctx.device)
                    self._finish_step(plan, logits)
                    self.metrics.step.observe(time.perf_counter() - started)
        except Exception as e:
            logger.error("model group failed: %s: %s", type(e).__name__, e)
            if self.on_failure is not None:
                self.on_failure()  # health says NOT_SERVING before any caller hears of the failure
            with self.cv:
                self.failure = e
                self._fail_all(Unavailable(f"the model group failed ({type(e).__name__}); retry shortly"))
        finally:
            self.finished.set()

    def _next_plan(self) -> StepPlan:
        with self.cv:
            while True:
                if self.stopping:
                    self._fail_all(Unavailable("the model service stopped before this request finished"))
                    return StepPlan(kind=PlanKind.SHUTDOWN)
                self._drop_cancelled()
                new_rows = self._admit()
                if self.rows:
                    return self._plan_step(new_rows)
                self.pending_moves.clear()  # nothing left whose cache must move
                if not self.cv.wait(timeout=self.cfg.heartbeat_s) and self.ctx.world_size > 1:
                    return StepPlan(kind=PlanKind.HEARTBEAT)

    def _drop_cancelled(self) -> None:
        self.waiting = collections.deque(r for r in self.waiting if not r.cancelled)
        gone = [row for row in self.rows if row.request.cancelled]
        if gone:
            self.metrics.finished_rows.labels(Finish.CANCELLED.value).inc(len(gone))
            self._remove(gone)
        self.metrics.queued.set(len(self.waiting))

    def _admit(self) -> list[Row]:
        new: list[Row] = []
        budget = self.cfg.max_prefill_tokens
        p = self.params
        while self.waiting:
            request = self.waiting[0]
            prompts = request.params.prompts
            n_tokens = sum(len(t) for t in prompts)
            if len(self.rows) + len(prompts) > p.max_batch_size or (new and n_tokens > budget):
                break
            self.waiting.popleft()
            budget -= n_tokens
            seed = request.params.seed
            for i, prompt in enumerate(prompts):
                row = Row(
                    request=request,
                    index=i,
                    prompt=list(prompt),
                    slot=len(self.rows),
                    limit=min(p.max_seq_len, len(prompt) + request.params.max_gen_len),
                    generator=make_generator(None if seed is None else seed + i),
                )
                self.rows.append(row)
                new.append(row)
            self.metrics.prompt_tokens.inc(n_tokens)
        self.metrics.queued.set(len(self.waiting))
        self.metrics.active_rows.set(len(self.rows))
        return new

    def _plan_step(self, new_rows: list[Row]) -> StepPlan:
        running = self.rows[: len(self.rows) - len(new_rows)]
        plan = StepPlan(
            moves=self.pending_moves,
            decode_tokens=[r.last_token for r in running],
            decode_positions=[r.pos for r in running],
        )
        self.pending_moves = []
        # Consecutive new rows share a prefill; a row that echoes logprobs needs logits at every
        # position, so it gets a prefill of its own.
        for row in new_rows:
            full = row.request.params.echo and row.request.params.logprobs
            last = plan.prefills[-1] if plan.prefills else None
            if full or last is None or last.full_logits:
                plan.prefills.append(Prefill(row.slot, [row.prompt], full))
            else:
                last.prompts.append(row.prompt)
        return plan

    def _finish_step(self, plan: StepPlan, logits: StepLogits) -> None:
        self.steps += 1
        n_running = len(plan.decode_tokens)
        rows = self.rows  # running rows, then the new ones, in slot order
        parts: list[torch.Tensor] = [] if logits.decode is None else [logits.decode]
        prompt_logprobs: dict[int, list[float]] = {}
        slot = n_running
        for prefill, lg in zip(plan.prefills, logits.prefills, strict=True):
            if prefill.full_logits:  # (1, len, vocab): the prompt's own logprobs, then its last position
                prompt = prefill.prompts[0]
                targets = torch.tensor(prompt[1:], device=lg.device)[:, None]
                lp = torch.log_softmax(lg[0, :-1], dim=-1).gather(-1, targets)
                prompt_logprobs[slot] = [0.0, *lp.flatten().tolist()]
                parts.append(lg[0, -1:])
            else:
                parts.append(lg)
            slot += len(prefill.prompts)
        all_logits = torch.cat(parts)  # (rows, vocab)
        device = all_logits.device
        temps = torch.tensor([r.request.params.temperature for r in rows], device=device)
        top_ps = torch.tensor([r.request.params.top_p for r in rows], device=device)
        chosen = sample(all_logits, temps, top_ps, [r.generator for r in rows])
        next_tokens = chosen.tolist()
        if any(r.request.params.logprobs for r in rows):
            chosen_lp = torch.log_softmax(all_logits, dim=-1).gather(-1, chosen[:, None]).flatten().tolist()
        else:
            chosen_lp = [0.0] * len(rows)
        now = time.perf_counter()
        finished = []
        for i, (row, token, lp) in enumerate(zip(rows, next_tokens, chosen_lp, strict=True)):
            params = row.request.params
            if i >= n_running:  # prefilled this step
                row.pos = len(row.prompt)
                if params.echo:
                    echo_lp = prompt_logprobs.get(row.slot, []) if params.logprobs else []
                    row.request.sink(Event(row.index, list(row.prompt), echo_lp))
                self.metrics.ttft.observe(now - row.request.arrived)
            else:
                row.pos += 1
                self.metrics.itl.observe(now - row.last_time)
            row.last_time = now
            if token in params.stop_ids:
                row.done = True
                row.request.sink(Event(row.index, [], [], Finish.EOS))
            else:
                row.generated.append(token)
                row.last_token = token
                row.done = len(row.prompt) + len(row.generated) >= row.limit
                row.request.sink(
                    Event(row.index, [token], [lp] if params.logprobs else [], Finish.LENGTH if row.done else None)
                )
                self.metrics.generated_tokens.inc()
            if row.done:
                finished.append(row)
                self.metrics.finished_rows.labels(Finish.EOS.value if token in params.stop_ids else "length").inc()
        if finished:
            with self.cv:
                self._remove(finished)

    def _remove(self, gone: Sequence[Row]) -> None:
        """Take rows out and move the last running rows into the freed slots."""
        for row in gone:
            row.done = True
        alive = [r for r in self.rows if not r.done]
        n = len(alive)
        holes = sorted(r.slot for r in gone if r.slot < n)
        movers = [r for r in alive if r.slot >= n]
        for row, hole in zip(movers, holes, strict=True):
            self.pending_moves.append((row.slot, hole, row.pos))
            row.slot = hole
        self.rows = sorted(alive, key=lambda r: r.slot)
        self.metrics.active_rows.set(len(self.rows))

    def _fail_all(self, error: ServiceError) -> None:
        """Give every running and waiting request its one terminal outcome: error."""
        requests = {id(r.request): r.request for r in self.rows}
        requests |= {id(r): r for r in self.waiting}
        for request in requests.values():
            request.sink(error)
        self.rows, self.waiting = [], collections.deque()
        self.metrics.active_rows.set(0)
        self.metrics.queued.set(0)
