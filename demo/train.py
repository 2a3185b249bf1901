"""Train the demo model: a sentencepiece tokenizer, then a small Llama, written in Meta's layout."""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from demo.corpus import dialogs, stories, tokenizer_sentences
from model_svc.checkpoint import skip_fairscale_init
from model_svc.distributed import init_distributed
from model_svc.layout import write_checkpoint
from model_svc.model import ModelArgs, Transformer
from tokenizer_svc.chat import encode_dialog
from tokenizer_svc.tokenizer import Tokenizer
from tokenizer_svc.train import train_tokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Size of the demo model and of its training run."""

    vocab_size: int = 1000
    dim: int = 192
    n_layers: int = 4
    n_heads: int = 6
    seq_len: int = 384  # a whole chat with Meta's default system prompt fits in one window
    batch_size: int = 12
    lr: float = 3e-3
    seconds: float = 150.0  # the training budget: steps run until it is spent
    seed: int = 0


def model_args(cfg: TrainConfig) -> ModelArgs:
    """The demo's hyper-parameters (vocabulary and every split dimension divide by 2, for NPROC=2)."""
    return ModelArgs(
        dim=cfg.dim,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        vocab_size=cfg.vocab_size,
        multiple_of=64,
        max_seq_len=cfg.seq_len,
        max_batch_size=cfg.batch_size,
    )


def examples(tok: Tokenizer, rng: random.Random) -> Iterator[list[int]]:
    """Token ids of finished chats (each exchange ending with EOS) and of stories."""
    chats, tales = dialogs(rng), stories(rng)
    while True:
        if rng.random() < 0.85:
            yield encode_dialog(tok, next(chats), system_prompt=None)
        else:
            yield tok.encode(next(tales), bos=True, eos=True)


def batches(tok: Tokenizer, cfg: TrainConfig) -> Iterator[torch.Tensor]:
    """Examples packed back to back into (batch, seq_len + 1) windows."""
    stream = examples(tok, random.Random(cfg.seed))
    buf: list[int] = []
    while True:
        rows = []
        for _ in range(cfg.batch_size):
            while len(buf) < cfg.seq_len + 1:
                buf += next(stream)
            rows.append(buf[: cfg.seq_len + 1])
            buf = buf[cfg.seq_len + 1 :]
        yield torch.tensor(rows)


def init_weights(model: Transformer, n_layers: int, gen: torch.Generator) -> None:
    """GPT-2 style: N(0, 0.02), residual projections scaled down by depth, norms at 1."""
    for name, p in model.named_parameters():
        if p.dim() == 1:
            torch.nn.init.ones_(p)
        else:
            std = 0.02 / math.sqrt(2 * n_layers) if name.endswith(("wo.weight", "w2.weight")) else 0.02
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def progress(fraction: float, loss: float, elapsed: float) -> None:
    """A one-line progress bar on stderr."""
    width = 30
    filled = int(width * min(fraction, 1.0))
    bar = "#" * filled + "-" * (width - filled)
    sys.stderr.write(f"\r  training the demo model [{bar}] {fraction * 100:5.1f}%  loss {loss:5.2f}  {elapsed:4.0f} s")
    sys.stderr.flush()


def train(out_dir: Path, cfg: TrainConfig) -> None:
    """Write out_dir/tokenizer.model, out_dir/mp1 and out_dir/mp2 (Meta's layout, 1 and 2 shards)."""
    torch.manual_seed(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    sys.stderr.write("  training the tokenizer ...\n")
    model_proto = train_tokenizer(tokenizer_sentences(20000, cfg.seed), cfg.vocab_size)
    tok = Tokenizer(model_proto)
    init_distributed("cpu")
    args = model_args(cfg)
    with skip_fairscale_init():
        model = Transformer(args)
    init_weights(model, cfg.n_layers, torch.Generator().manual_seed(cfg.seed))
    model.setup_caches(torch.device("cpu"), torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    start, step, loss_avg = time.perf_counter(), 0, float("nan")
    data = batches(tok, cfg)
    while (elapsed := time.perf_counter() - start) < cfg.seconds:
        frac = elapsed / cfg.seconds
        for group in opt.param_groups:  # warm up, then cosine decay over the time budget
            group["lr"] = cfg.lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        batch = next(data)
        logits = model.forward_train(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_avg = loss.item() if step == 0 else 0.95 * loss_avg + 0.05 * loss.item()
        step += 1
        if step % 5 == 0:
            progress(frac, loss_avg, elapsed)
    progress(1.0, loss_avg, time.perf_counter() - start)
    sys.stderr.write(f"\n  {step} steps, {step * cfg.batch_size * cfg.seq_len / 1e6:.2f}M tokens\n")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for world_size in (1, 2):
        write_checkpoint(out_dir / f"mp{world_size}", args, state, world_size)
    (out_dir / "tokenizer.model").write_bytes(model_proto)
