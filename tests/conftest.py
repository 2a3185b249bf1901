"""Session fixtures made at test time: a Llama-2-style tokenizer and random Meta-layout checkpoints."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model_svc.layout import random_state_dict, write_checkpoint  # noqa: E402
from model_svc.model import ModelArgs  # noqa: E402
from tests.corpus import sentences  # noqa: E402
from tokenizer_svc.train import train_tokenizer  # noqa: E402

VOCAB = 1000
# Multi-head attention, Meta's defaults otherwise.
MHA = ModelArgs(dim=64, n_layers=2, n_heads=4, vocab_size=VOCAB, multiple_of=32, max_seq_len=128, max_batch_size=32)
# Grouped-query attention with ffn_dim_multiplier and a non-default rope_theta.
GQA = ModelArgs(
    dim=64,
    n_layers=2,
    n_heads=8,
    n_kv_heads=2,
    vocab_size=VOCAB,
    multiple_of=16,
    ffn_dim_multiplier=1.3,
    rope_theta=100000.0,
    norm_eps=1e-6,
    max_seq_len=128,
    max_batch_size=32,
)
# ~15 ms per decode step on 2 cores: rows that live long enough to be queued behind or cancelled.
SLOW = ModelArgs(dim=512, n_layers=8, n_heads=8, vocab_size=VOCAB, multiple_of=256, max_seq_len=512, max_batch_size=8)


@pytest.fixture(scope="session")
def tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentencepiece model trained with Llama-2's trainer options."""
    path = tmp_path_factory.mktemp("tok") / "tokenizer.model"
    path.write_bytes(train_tokenizer(sentences(), VOCAB))
    return path


def make_checkpoint(root: Path, args: ModelArgs, world_size: int, seed: int = 0) -> tuple[Path, dict]:
    """Random weights for args written in Meta's layout with world_size shards."""
    state = random_state_dict(args, seed)
    ckpt = root / f"mp{world_size}"
    write_checkpoint(ckpt, args, state, world_size)
    return ckpt, state


@pytest.fixture(scope="session")
def mha_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(MP=1 dir, MP=2 dir, full state) for the MHA config."""
    root = tmp_path_factory.mktemp("mha")
    one, state = make_checkpoint(root, MHA, 1)
    two, _ = make_checkpoint(root, MHA, 2)
    return one, two, state


@pytest.fixture(scope="session")
def gqa_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(MP=1 dir, MP=2 dir, full state) for the GQA config."""
    root = tmp_path_factory.mktemp("gqa")
    one, state = make_checkpoint(root, GQA, 1, seed=1)
    two, _ = make_checkpoint(root, GQA, 2, seed=1)
    return one, two, state


@pytest.fixture(scope="session")
def slow_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(MP=1 dir, MP=2 dir) for the SLOW config."""
    root = tmp_path_factory.mktemp("slow")
    return make_checkpoint(root, SLOW, 1, seed=2)[0], make_checkpoint(root, SLOW, 2, seed=2)[0]


@pytest.fixture(scope="session")
def dist_ctx():
    """This test process as a model-parallel group of one (gloo)."""
    from model_svc.distributed import init_distributed

    torch.manual_seed(0)
    return init_distributed("cpu")


def load(ckpt: Path, args: ModelArgs, max_batch_size: int | None = None, prepack: bool = True):
    """Load a checkpoint as a group of one, as the service does (weights packed for oneDNN)."""
    from model_svc.checkpoint import load_model

    return load_model(
        ckpt,
        max_seq_len=args.max_seq_len,
        max_batch_size=max_batch_size or args.max_batch_size,
        device=torch.device("cpu"),
        dtype_name="float32",
        rank=0,
        world_size=1,
        prepack=prepack,
    )


__all__ = ["GQA", "MHA", "SLOW", "VOCAB", "load", "make_checkpoint", "replace"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test is not a passing test: fail the run if any test was skipped."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == 0:
        session.exitstatus = 1
        reporter.write_line(f"FAILED: {len(skipped)} test(s) were skipped; skipped tests do not count as passing")


class LiveStack:
    """The addresses of a running stack: the one $LLAMA_GRPC_GATEWAY names, or one started here."""

    def __init__(self, gateway: str, metrics: dict[str, str | None]) -> None:
        self.gateway = gateway
        self.metrics = metrics  # service name → /metrics URL


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory, tokenizer_path: Path):
    """A whole stack to test as users meet it; compose runs these tests against its own stack."""
    import os

    if os.environ.get("LLAMA_GRPC_GATEWAY"):
        yield LiveStack(
            os.environ["LLAMA_GRPC_GATEWAY"],
            {name: os.environ.get(f"LLAMA_GRPC_{name.upper()}_METRICS") for name in ("gateway", "model", "tokenizer")},
        )
        return
    from tests.stack import gateway_service, model_service, tokenizer_service

    ckpt, _ = make_checkpoint(tmp_path_factory.mktemp("live"), SLOW, 1, seed=3)
    tok = tokenizer_service(tokenizer_path, "--system-prompt", "You are a helpful assistant.", metrics=True)
    model = model_service(ckpt, 1, "--max-seq-len", "512", "--max-batch-size", "8")
    gw = gateway_service(tok.address, model.address)
    yield LiveStack(gw.address, {s.name: f"http://127.0.0.1:{s.metrics_port}/metrics" for s in (gw, model, tok)})
    for svc in (gw, model, tok):
        svc.stop()
