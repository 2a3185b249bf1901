"""Server set-up the three services share: flags, binding (TLS), health, reflection, metrics, logs."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

logger = logging.getLogger(__name__)

# Clients (the gateway) ping idle channels every 30 s; accept pings that often without a GOAWAY.
_SERVER_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
]


@dataclass(frozen=True)
class ServerConfig:
    """Where and how a service listens."""

    host: str
    port: int
    metrics_host: str
    metrics_port: int  # 0: no metrics endpoint
    max_message_bytes: int
    grace_s: float
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> ServerConfig:
        """Build from the flags of add_server_args."""
        if (ns.tls_cert is None) != (ns.tls_key is None):
            raise SystemExit("--tls-cert and --tls-key go together")
        return cls(
            host=ns.host,
            port=ns.port,
            metrics_host=ns.metrics_host,
            metrics_port=ns.metrics_port,
            max_message_bytes=ns.max_message_bytes,
            grace_s=ns.grace,
            tls_cert=ns.tls_cert,
            tls_key=ns.tls_key,
        )


def add_server_args(parser: argparse.ArgumentParser, *, port: int, host: str, metrics_port: int) -> None:
    """Flags every service takes."""
    g = parser.add_argument_group("server")
    g.add_argument("--host", default=host, help=f"address to listen on (default {host})")
    g.add_argument("--port", type=int, default=port, help=f"gRPC port (default {port})")
    g.add_argument("--metrics-host", default=host, help="address of the Prometheus endpoint (default: --host)")
    g.add_argument(
        "--metrics-port",
        type=int,
        default=metrics_port,
        help=f"Prometheus /metrics port, 0 for none (default {metrics_port})",
    )
    g.add_argument(
        "--max-message-bytes",
        type=int,
        default=4 * 1024 * 1024,
        help="largest gRPC message accepted or sent (default 4 MiB)",
    )
    g.add_argument("--grace", type=float, default=30.0, help="seconds in-flight RPCs get to finish on SIGTERM")
    g.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate chain: serve TLS")
    g.add_argument("--tls-key", type=Path, default=None, help="PEM private key for --tls-cert")
    g.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def grpc_options(cfg: ServerConfig) -> list[tuple[str, Any]]:
    """Channel options for a server with this config."""
    return [
        *_SERVER_OPTIONS,
        ("grpc.max_receive_message_length", cfg.max_message_bytes),
        ("grpc.max_send_message_length", cfg.max_message_bytes),
    ]


def bind(server: grpc.Server | grpc.aio.Server, cfg: ServerConfig) -> int:
    """Listen on cfg's address, with TLS when a certificate is given; return the bound port."""
    address = f"{cfg.host}:{cfg.port}"
    if cfg.tls_cert is not None and cfg.tls_key is not None:
        creds = grpc.ssl_server_credentials([(cfg.tls_key.read_bytes(), cfg.tls_cert.read_bytes())])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise SystemExit(f"cannot listen on {address}")
    return port


def add_health_and_reflection(
    server: grpc.Server | grpc.aio.Server, health: Any, service_names: Iterable[str]
) -> list[str]:
    """Register grpc.health.v1 and server reflection for the given services; return all names."""
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    return names


def start_metrics(cfg: ServerConfig, registry: CollectorRegistry) -> Callable[[], None]:
    """Serve registry on cfg's metrics port; return a function that stops it."""
    if cfg.metrics_port == 0:
        return lambda: None
    httpd, _ = start_http_server(cfg.metrics_port, addr=cfg.metrics_host, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", cfg.metrics_host, cfg.metrics_port)
    return httpd.shutdown


def setup_logging(level: str) -> None:
    """Plain timestamped logs on stderr."""
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
