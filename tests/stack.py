"""Start the real services as subprocesses on free ports for the integration tests."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from llama_grpc.launch import Service, free_port, python_module
from llama_grpc.stack import model_command


def model_service(
    ckpt: Path, nproc: int = 1, *args: str, name: str = "model", metrics: bool = True, max_restarts: int = 0
) -> Service:
    """torchrun --nproc_per_node nproc -m model_svc on ckpt; waits until SERVING."""
    port, metrics_port = free_port(), free_port() if metrics else 0
    cmd = model_command(ckpt, nproc, port, metrics_port, *args, max_restarts=max_restarts)
    svc = Service(name, cmd, port, metrics_port=metrics_port, lead_child=True)
    svc.wait_healthy(180)
    return svc


def tokenizer_service(tokenizer_path: Path, *args: str, metrics: bool = False) -> Service:
    """python -m tokenizer_svc on tokenizer_path; waits until SERVING."""
    port, metrics_port = free_port(), free_port() if metrics else 0
    cmd = python_module(
        "tokenizer_svc", f"--tokenizer-path={tokenizer_path}", f"--port={port}", f"--metrics-port={metrics_port}", *args
    )
    svc = Service("tokenizer", cmd, port, metrics_port=metrics_port)
    svc.wait_healthy(60)
    return svc


def rank_pids(svc: Service) -> list[int]:
    """The worker processes torchrun started for svc, rank 0 first (torchrun starts them in rank order)."""
    return svc.children()


def gateway_service(tokenizer_addr: str, model_addrs: str, *args: str, metrics: bool = True) -> Service:
    """python -m gateway in front of the given services; waits until SERVING (downstream up)."""
    port, metrics_port = free_port(), free_port() if metrics else 0
    svc = Service(
        "gateway",
        python_module(
            "gateway",
            "--tokenizer-addr",
            tokenizer_addr,
            "--model-addr",
            model_addrs,
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--metrics-port",
            str(metrics_port),
            *args,
        ),
        port,
        metrics_port=metrics_port,
    )
    svc.wait_healthy(120)
    return svc


def scrape(url: str) -> str:
    """The Prometheus text a /metrics URL serves."""
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample (or a name with its labels) in Prometheus text."""
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} not in metrics"
    return float(m.group(1))
