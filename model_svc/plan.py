"""Step plans: what every rank runs in one engine step, sent from rank 0 to the others."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from model_svc.model import Transformer


class PlanKind(enum.IntEnum):
    """What a plan asks the ranks to do."""

    STEP = 0  # move slots, decode and prefill rows
    HEARTBEAT = 1  # nothing: keeps idle followers inside their collective's timeout
    SHUTDOWN = 2  # leave the group and exit 0


@dataclass
class Prefill:
    """New rows in consecutive slots from first_slot, each with its whole prompt."""

    first_slot: int
    prompts: list[list[int]]
    full_logits: bool = False  # logits at every position (echo with logprobs), else the last only


@dataclass
class StepPlan:
    """One engine step: slot moves, one decode token per running row, then prefills."""

    kind: PlanKind = PlanKind.STEP
    moves: list[tuple[int, int, int]] = field(default_factory=list)  # (src slot, dst slot, cached length)
    decode_tokens: list[int] = field(default_factory=list)  # rows in slots 0 .. n-1
    decode_positions: list[int] = field(default_factory=list)
    prefills: list[Prefill] = field(default_factory=list)


@dataclass
class StepLogits:
    """Float32 logits of a step: (n_decode, vocab) and, per prefill, (rows, vocab) or (1, len, vocab)."""

    decode: torch.Tensor | None
    prefills: list[torch.Tensor]


def broadcast_plan(plan: StepPlan | None, group: dist.ProcessGroup | None) -> StepPlan:
    """Rank 0 sends its plan (pickled) to every rank; the others pass None and get it back."""
    box: list[StepPlan | None] = [plan]
    dist.broadcast_object_list(box, src=0, group=group)
    assert box[0] is not None
    return box[0]


@torch.inference_mode()
def execute(model: Transformer, plan: StepPlan, device: torch.device) -> StepLogits:
    """Run a plan's forward passes; every rank does this with the same plan."""
    for src, dst, length in plan.moves:
        model.move_slot(src, dst, length)
    decode = None
    if plan.decode_tokens:
        n = len(plan.decode_tokens)
        tokens = torch.tensor(plan.decode_tokens, device=device)[:, None]  # (n, 1)
        decode = model.forward(tokens, plan.decode_positions, first_slot=0, logits_at=[0] * n)
    prefills = []
    for p in plan.prefills:
        lens = [len(t) for t in p.prompts]
        tokens = torch.zeros((len(lens), max(lens)), dtype=torch.long, device=device)
        for r, t in enumerate(p.prompts):
            tokens[r, : len(t)] = torch.tensor(t, device=device)
        at = None if p.full_logits else [n - 1 for n in lens]
        prefills.append(model.forward(tokens, 0, first_slot=p.first_slot, logits_at=at))
    return StepLogits(decode, prefills)
