"""merge_pending_tokens: a row's tokens that piled up behind the engine go as one event, and nothing else does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from llama_grpc.errors import ServiceError, Unavailable
from model_svc.engine import Event, GenerateParams
from model_svc.generation import Finish
from model_svc.server import ModelServicer


class BurstEngine:
    """An engine that has already produced every event when the servicer first looks."""

    def __init__(self, items: list[Event | ServiceError]) -> None:
        self.items = items
        self.cancelled = False

    def submit(self, params: GenerateParams, sink: Callable[[Event | ServiceError], None]) -> object:
        for item in self.items:
            sink(item)
        return self

    def cancel(self, request: object) -> None:
        self.cancelled = True


def params(n_rows: int = 1, echo: bool = False) -> GenerateParams:
    return GenerateParams(
        prompts=[[1, 5, 6]] * n_rows, max_gen_len=8, temperature=0.0, top_p=1.0,
        logprobs=True, echo=echo, seed=None, stop_ids=(2,),
    )  # fmt: skip


def collect(engine: BurstEngine, p: GenerateParams, merge: bool = True) -> list[Event]:
    servicer = ModelServicer(engine, tracker=None, info=None)  # type: ignore[arg-type]

    async def go() -> list[Event]:
        return [ev async for ev in servicer._events(p, merge)]

    return asyncio.run(go())


def test_tokens_that_piled_up_go_as_one_event() -> None:
    engine = BurstEngine([Event(0, [7], [-0.1]), Event(0, [8], [-0.2]), Event(0, [9], [-0.3], Finish.LENGTH)])
    assert collect(engine, params()) == [Event(0, [7, 8, 9], [-0.1, -0.2, -0.3], Finish.LENGTH)]
    assert not engine.cancelled


def test_without_merge_every_decode_step_is_its_own_event() -> None:
    items: list[Event | ServiceError] = [Event(0, [7], [-0.1]), Event(0, [8], [-0.2]), Event(0, [9], [], Finish.EOS)]
    assert collect(BurstEngine(items), params(), merge=False) == items


def test_rows_and_echo_events_are_never_merged() -> None:
    items: list[Event | ServiceError] = [
        Event(0, [1, 5, 6], [0.0, -1.0, -2.0]),  # row 0's echo of its prompt
        Event(0, [7], [-0.1]),
        Event(1, [1, 5, 6], [0.0, -1.0, -2.0]),
        Event(1, [8], [-0.2]),
        Event(1, [9], [-0.3], Finish.EOS),
        Event(0, [4], [-0.4], Finish.LENGTH),
    ]
    got = collect(BurstEngine(items), params(n_rows=2, echo=True))
    assert got == [
        Event(0, [1, 5, 6], [0.0, -1.0, -2.0]),
        Event(0, [7], [-0.1]),
        Event(1, [1, 5, 6], [0.0, -1.0, -2.0]),
        Event(1, [8, 9], [-0.2, -0.3], Finish.EOS),
        Event(0, [4], [-0.4], Finish.LENGTH),
    ]


def test_an_error_behind_tokens_still_ends_the_stream() -> None:
    engine = BurstEngine([Event(0, [7], [-0.1]), Unavailable("the model group failed")])
    with pytest.raises(Unavailable):
        collect(engine, params())
    assert engine.cancelled
