"""The process group: gloo on CPU, NCCL on CUDA, fairscale model parallelism over all ranks."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from fairscale.nn.model_parallel.initialize import (
    destroy_model_parallel,
    initialize_model_parallel,
    model_parallel_is_initialized,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place in the model-parallel group."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    control_group: dist.ProcessGroup | None  # a CPU (gloo) group for step plans; None: the default group


def _torchrun_env() -> tuple[int, int, int, int]:
    # torchrun passes the group's shape in these variables; a plain `python -m` is a group of one.
    env = os.environ
    return (
        int(env.get("RANK", "0")),
        int(env.get("WORLD_SIZE", "1")),
        int(env.get("LOCAL_RANK", "0")),
        int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", "1"))),
    )


def _attempt_store(rank: int, world_size: int, timeout: timedelta) -> dist.Store:
    """torchrun's store, under a prefix of its own for each restart of the group.

    torchrun (--max-restarts) shares one TCPStore across restarts; without a prefix, a restarted
    group can read the gloo addresses its dead predecessors published and fail to connect
    (pytorch/pytorch#135712). Every rank of an attempt sees the same TORCHELASTIC_RESTART_COUNT.
    """
    env = os.environ
    agent_hosts_it = env.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        env["MASTER_ADDR"],
        int(env["MASTER_PORT"]),
        world_size,
        is_master=not agent_hosts_it and rank == 0,
        timeout=timeout,
        multi_tenant=not agent_hosts_it,
    )
    return dist.PrefixStore(f"/llama-grpc/attempt_{env.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def init_distributed(device_type: str, timeout_s: float = 60.0) -> DistContext:
    """Join (or, outside torchrun, create) the process group and fairscale's model-parallel group."""
    rank, world_size, local_rank, local_world_size = _torchrun_env()
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    backend = "nccl" if device_type == "cuda" else "gloo"
    timeout = timedelta(seconds=timeout_s)
    if not dist.is_initialized():
        if "MASTER_ADDR" in os.environ:
            store = _attempt_store(rank, world_size, timeout)
            dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
        else:
            # A single process without torchrun: an in-memory store is all a group of one needs.
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
    control = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
    if not model_parallel_is_initialized():
        with contextlib.redirect_stdout(io.StringIO()):  # fairscale prints its group sizes
            initialize_model_parallel(world_size)
    logger.info("rank %d of %d joined a %s group on %s", rank, world_size, backend, device)
    return DistContext(rank, world_size, local_rank, local_world_size, device, control)


def set_thread_budget(local_world_size: int, threads: int = 0) -> int:
    """Give each rank its share of this machine's cores (or `threads`), so together they use them once."""
    cores = len(os.sched_getaffinity(0))
    threads = threads or max(1, cores // max(1, local_world_size))
    torch.set_num_threads(threads)
    return threads


def shutdown_distributed() -> None:
    """Leave the group cleanly: a rank that exits without this can die of SIGABRT."""
    if model_parallel_is_initialized():
        destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()
