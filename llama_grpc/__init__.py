"""Pieces the three services share: error types, RPC wrappers, server set-up, metrics, logging."""
