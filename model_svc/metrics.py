"""Prometheus metrics of the model engine."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class EngineMetrics:
    """Queue, batch, latency and token counters of one engine."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.queued = Gauge("llama_engine_queued_requests", "Requests waiting for free rows", registry=registry)
        self.active_rows = Gauge("llama_engine_active_rows", "Rows in the running batch", registry=registry)
        self.ttft = Histogram(
            "llama_engine_time_to_first_token_seconds",
            "From a request's arrival to its row's first token",
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.itl = Histogram(
            "llama_engine_inter_token_latency_seconds",
            "Between consecutive tokens of a row",
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.step = Histogram(
            "llama_engine_step_seconds",
            "One engine step: moves, decode and prefill",
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.prompt_tokens = Counter("llama_engine_prompt_tokens", "Prompt tokens prefilled", registry=registry)
        self.generated_tokens = Counter("llama_engine_generated_tokens", "Tokens generated", registry=registry)
        self.finished_rows = Counter(
            "llama_engine_finished_rows", "Rows that left the batch, by reason", ["reason"], registry=registry
        )
