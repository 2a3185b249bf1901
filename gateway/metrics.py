"""Prometheus metrics of the gateway (RPC counts come from llama_grpc.rpc)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class GatewayMetrics:
    """Latency and token counters as the gateway's callers see them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ttft = Histogram(
            "llama_gateway_time_to_first_token_seconds",
            "From a request's prompts going to the model to each prompt's first text",
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.itl = Histogram(
            "llama_gateway_inter_token_latency_seconds",
            "Between consecutive outputs of a prompt",
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.prompt_tokens = Counter(
            "llama_gateway_prompt_tokens", "Prompt tokens sent to the model", registry=registry
        )
        self.generated_tokens = Counter("llama_gateway_generated_tokens", "Tokens generated", registry=registry)
