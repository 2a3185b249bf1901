"""Generated protobuf and gRPC code for llama.v1 (scripts/gen_protos.py)."""
