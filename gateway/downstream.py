"""Channels to the tokenizer and model services: keepalive, retries, replicas, reconnection."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import grpc

from llama.v1 import model_pb2, model_pb2_grpc, tokenizer_pb2, tokenizer_pb2_grpc
from llama_grpc.errors import Unavailable
from tokenizer_svc.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

# Keepalive pings find a dead peer on an idle channel; short reconnect backoff brings a restarted
# service back within a second or two, without restarting the gateway.
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.enable_retries", 1),
]
# Every tokenizer RPC is idempotent: retry it when the service is briefly unreachable.
_TOKENIZER_SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": "llama.v1.TokenizerService"}],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.2s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


@dataclass(frozen=True)
class DownstreamConfig:
    """Where the tokenizer and model services are."""

    tokenizer_addr: str
    model_addrs: tuple[str, ...]  # host:port each, or one dns:///name:port resolving to all replicas
    connect_timeout_s: float = 10.0
    default_timeout_s: float = 600.0  # for calls whose client set no deadline
    info_ttl_s: float = 10.0
    max_message_bytes: int = 4 * 1024 * 1024


def _channel(target: str, cfg: DownstreamConfig, extra: list[tuple[str, Any]]) -> grpc.aio.Channel:
    options = [
        *_CHANNEL_OPTIONS,
        ("grpc.max_receive_message_length", cfg.max_message_bytes),
        ("grpc.max_send_message_length", cfg.max_message_bytes),
        *extra,
    ]
    return grpc.aio.insecure_channel(target, options=options)


def parse_model_addrs(value: str) -> tuple[str, ...]:
    """'h1:p1,h2:p2' or 'dns:///name:port' → the replica targets."""
    addrs = tuple(a.strip() for a in value.split(",") if a.strip())
    if not addrs:
        raise ValueError("--model-addr needs at least one address")
    return addrs


class Replica:
    """One model-service target and its channel."""

    def __init__(self, target: str, cfg: DownstreamConfig) -> None:
        self.target = target
        # A dns:/// name may resolve to several replicas: spread calls over all of them.
        lb = [("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]}))]
        self.channel = _channel(target, cfg, lb if target.startswith("dns:") else [])
        self.stub = model_pb2_grpc.ModelServiceStub(self.channel)

    def ready(self) -> bool:
        """Connected now (asking the channel to connect if it is idle)."""
        return self.channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY


class Downstream:
    """The gateway's view of its downstream services, with cached tokenizer and engine facts."""

    def __init__(self, cfg: DownstreamConfig) -> None:
        self.cfg = cfg
        self.tokenizer_channel = _channel(
            cfg.tokenizer_addr, cfg, [("grpc.service_config", json.dumps(_TOKENIZER_SERVICE_CONFIG))]
        )
        self.tokenizer_stub = tokenizer_pb2_grpc.TokenizerServiceStub(self.tokenizer_channel)
        self.replicas = [Replica(t, cfg) for t in cfg.model_addrs]
        self._rr = itertools.cycle(range(len(self.replicas)))
        self._tokenizer: Tokenizer | None = None
        self._tokenizer_info: tuple[float, tokenizer_pb2.GetTokenizerInfoResponse] | None = None
        self._engine_info: tuple[float, model_pb2.GetEngineInfoResponse] | None = None

    def timeout(self, remaining: float | None) -> float:
        """The deadline for a downstream call: the client's, or the default when it set none."""
        return self.cfg.default_timeout_s if remaining is None else max(remaining, 0.0)

    async def pick_replica(self, remaining: float | None, avoid: Replica | None = None) -> Replica:
        """The next connected replica, round robin; waits (within the deadline) for one to connect."""
        wait = min(self.cfg.connect_timeout_s, self.timeout(remaining))
        deadline = time.monotonic() + wait
        while True:
            for _ in range(len(self.replicas)):
                replica = self.replicas[next(self._rr)]
                if replica is not avoid and replica.ready():
                    return replica
            if avoid is not None and len(self.replicas) == 1 and avoid.ready():
                return avoid
            if time.monotonic() >= deadline:
                targets = ", ".join(r.target for r in self.replicas)
                raise Unavailable(f"no model replica is reachable ({targets}) after {wait:.1f} s")
            await asyncio.sleep(0.05)

    async def tokenizer_ready(self, remaining: float | None) -> None:
        """Wait (within the deadline and connect_timeout_s) until the tokenizer channel is connected."""
        channel = self.tokenizer_channel
        if channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY:
            return
        wait = min(self.cfg.connect_timeout_s, self.timeout(remaining))
        try:
            await asyncio.wait_for(self._connected(channel), wait)
        except TimeoutError:
            raise Unavailable(
                f"the tokenizer service ({self.cfg.tokenizer_addr}) is unreachable after {wait:.1f} s"
            ) from None

    @staticmethod
    async def _connected(channel: grpc.aio.Channel) -> None:
        state = channel.get_state(try_to_connect=True)
        while state != grpc.ChannelConnectivity.READY:
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=True)

    def ready_replicas(self) -> int:
        """How many replica channels are connected."""
        return sum(r.ready() for r in self.replicas)

    async def tokenizer_info(self, remaining: float | None) -> tokenizer_pb2.GetTokenizerInfoResponse:
        """GetTokenizerInfo, cached for info_ttl_s."""
        now = time.monotonic()
        if self._tokenizer_info is None or now - self._tokenizer_info[0] > self.cfg.info_ttl_s:
            await self.tokenizer_ready(remaining)
            info = await self.tokenizer_stub.GetTokenizerInfo(
                tokenizer_pb2.GetTokenizerInfoRequest(), timeout=self.timeout(remaining)
            )
            self._tokenizer_info = (now, info)
        return self._tokenizer_info[1]

    async def tokenizer(self, remaining: float | None) -> Tokenizer:
        """The tokenizer model the tokenizer service serves, fetched again whenever it changes."""
        info = await self.tokenizer_info(remaining)
        if self._tokenizer is None or self._tokenizer.sha256 != info.model_sha256:
            resp = await self.tokenizer_stub.GetTokenizerModel(
                tokenizer_pb2.GetTokenizerModelRequest(), timeout=self.timeout(remaining)
            )
            self._tokenizer = Tokenizer(resp.model)
            logger.info("loaded the tokenizer model from the tokenizer service (sha256 %s)", resp.model_sha256[:12])
        return self._tokenizer

    async def engine_info(self, remaining: float | None) -> model_pb2.GetEngineInfoResponse:
        """GetEngineInfo of a replica, cached for info_ttl_s (replicas serve the same model)."""
        now = time.monotonic()
        if self._engine_info is None or now - self._engine_info[0] > self.cfg.info_ttl_s:
            replica = await self.pick_replica(remaining)
            info = await replica.stub.GetEngineInfo(model_pb2.GetEngineInfoRequest(), timeout=self.timeout(remaining))
            self._engine_info = (now, info)
        return self._engine_info[1]

    async def close(self) -> None:
        """Close every channel."""
        await self.tokenizer_channel.close()
        for r in self.replicas:
            await r.channel.close()
