"""A terminal client: python -m gateway.client chat "Hello" | complete "Once upon" | info

Streams text as it is generated; --json prints one JSON object per stream message instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import grpc
from google.protobuf import json_format

from llama.v1 import gateway_pb2 as pb
from llama.v1 import gateway_pb2_grpc, types_pb2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The client's flags."""
    p = argparse.ArgumentParser(
        prog="python -m gateway.client", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--addr", default=os.environ.get("LLAMA_GRPC_ADDR", "localhost:50051"), help="gateway host:port")
    p.add_argument("--api-key", default=os.environ.get("LLAMA_GRPC_API_KEY"), help="sent as 'authorization: Bearer'")
    p.add_argument("--tls-ca", type=Path, default=None, help="CA certificate (PEM): connect with TLS")
    p.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (("chat", "answer a user message"), ("complete", "continue a text")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("text", help="the user message" if name == "chat" else "the prompt")
        c.add_argument("--temperature", type=float, default=None, help="0 is greedy (server default 0.6)")
        c.add_argument("--top-p", type=float, default=None, help="nucleus threshold (server default 0.9)")
        c.add_argument("--max-gen-len", type=int, default=None, help="most tokens to generate")
        c.add_argument("--seed", type=int, default=None, help="same seed, same text")
        c.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
        c.add_argument("--logprobs", action="store_true", help="include per-token pieces and logprobs (with --json)")
        c.add_argument("--json", action="store_true", help="one JSON object per stream message")
        if name == "chat":
            c.add_argument("--system", default=None, help="system prompt (default: the server's)")
        else:
            c.add_argument("--echo", action="store_true", help="print the prompt first")
    sub.add_parser("info", help="describe the model behind the gateway")
    return p.parse_args(argv)


def _sampling(args: argparse.Namespace) -> dict:
    fields = {"temperature": args.temperature, "top_p": args.top_p, "max_gen_len": args.max_gen_len, "seed": args.seed}
    return {k: v for k, v in fields.items() if v is not None} | {"stop": args.stop, "logprobs": args.logprobs}


def main(argv: list[str] | None = None) -> int:
    """Run one command against the gateway."""
    args = parse_args(argv)
    if args.tls_ca is not None:
        channel = grpc.secure_channel(args.addr, grpc.ssl_channel_credentials(args.tls_ca.read_bytes()))
    else:
        channel = grpc.insecure_channel(args.addr)
    stub = gateway_pb2_grpc.GatewayServiceStub(channel)
    metadata = [("authorization", f"Bearer {args.api_key}")] if args.api_key else None
    try:
        if args.command == "info":
            info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=args.timeout, metadata=metadata)
            print(
                json_format.MessageToJson(
                    info, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
                )
            )
            return 0
        if args.command == "chat":
            messages = [types_pb2.Message(role=types_pb2.ROLE_USER, content=args.text)]
            if args.system is not None:
                messages.insert(0, types_pb2.Message(role=types_pb2.ROLE_SYSTEM, content=args.system))
            req = pb.StreamChatCompletionRequest(dialogs=[types_pb2.Dialog(messages=messages)], **_sampling(args))
            stream = stub.StreamChatCompletion(req, timeout=args.timeout, metadata=metadata)
        else:
            req = pb.StreamTextCompletionRequest(prompts=[args.text], echo=args.echo, **_sampling(args))
            stream = stub.StreamTextCompletion(req, timeout=args.timeout, metadata=metadata)
        for msg in stream:
            if args.json:
                fields = json_format.MessageToDict(
                    msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
                )
                print(json.dumps(fields), flush=True)
            else:
                sys.stdout.write(msg.text)
                sys.stdout.flush()
        if not args.json:
            sys.stdout.write("\n")
    except grpc.RpcError as e:
        print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # piped into head: the reader has all it wanted
        return 0
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
