"""Starting service processes on free ports, polling their health, and stopping them (make run, tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent  # the repository: services run from here


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_status(address: str, service: str = "", timeout: float = 2.0) -> str:
    """The grpc.health.v1 status name of address, or the gRPC error code's name."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as e:
            return e.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


class Service:
    """A service started as a subprocess (python -m ... or torchrun), its output kept in a log file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        port: int,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        metrics_port: int = 0,
        lead_child: bool = False,
    ) -> None:
        self.name = name
        self.port = port
        self.metrics_port = metrics_port
        # torchrun: stop the group through rank 0 (its first child), which drains and then tells the
        # other ranks to exit, so every process and torchrun itself exit 0.
        self.lead_child = lead_child
        self.address = f"127.0.0.1:{port}"
        self.log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=log_dir)[1])
        self._log = self.log_path.open("wb")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        # A session of its own, so that a test can signal the whole group (torchrun and its workers).
        self.proc = subprocess.Popen(
            args, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )

    def log(self) -> str:
        """Everything the service printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 120.0) -> None:
        """Poll health until SERVING; fail with the log if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            if health_status(self.address, timeout=1.0) == "SERVING":
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not healthy after {timeout:.0f} s:\n{self.log()[-4000:]}")

    def signal(self, sig: int) -> None:
        """Send sig to the service's main process."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def children(self) -> list[int]:
        """The service's child processes, oldest first (torchrun's ranks, in rank order)."""
        pids: set[int] = set()
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):  # any of its threads may be the parent
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in (task / "children").read_text().split())
        return sorted(pids)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, wait, and SIGKILL whatever is left if it does not go; return the exit code."""
        kids = self.children()  # torchrun's ranks run in sessions of their own: remember them
        if kids and self.lead_child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(kids[0], signal.SIGTERM)
        else:
            self.signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        for pid in kids:  # a rank its launcher left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._log.close()
        return code


def python_module(module: str, *args: str) -> list[str]:
    """The command line for python -m module args."""
    return [sys.executable, "-m", module, *args]
