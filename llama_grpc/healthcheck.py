"""python -m llama_grpc.healthcheck HOST:PORT [SERVICE]: exit 0 if grpc.health.v1 says SERVING.

For container health checks (docker compose), where no grpc_health_probe binary is installed.
"""

from __future__ import annotations

import sys

from llama_grpc.launch import health_status


def main(argv: list[str] | None = None) -> int:
    """Check once; print the status."""
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m llama_grpc.healthcheck HOST:PORT [SERVICE]", file=sys.stderr)
        return 2
    status = health_status(args[0], args[1] if len(args) > 1 else "", timeout=3.0)
    print(status)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    raise SystemExit(main())
