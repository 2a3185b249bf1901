"""Errors the services' cores raise, free of gRPC; llama_grpc.rpc maps each to one status code."""

from __future__ import annotations


class ServiceError(Exception):
    """An error meant for the caller: its message names the field and the limit."""


class InvalidArgument(ServiceError, ValueError):
    """Bad input: INVALID_ARGUMENT."""


class ResourceExhausted(ServiceError):
    """A queue or limit is full right now: RESOURCE_EXHAUSTED."""


class Unavailable(ServiceError):
    """A downstream service or a rank is gone, or the service is draining: UNAVAILABLE."""


class Unauthenticated(ServiceError):
    """No valid API key: UNAUTHENTICATED."""
