"""The seed's `Llama` API over the gateway: code written for Meta's generation.py changes one import.

    from gateway.llama import Llama        # instead of: from llama import Llama

    generator = Llama.build(ckpt_dir="llama-2-7b-chat/", tokenizer_path="tokenizer.model",
                            max_seq_len=512, max_batch_size=8)
    generator.chat_completion([[{"role": "user", "content": "Hello"}]], max_gen_len=64)

build() takes the seed's arguments (the model itself lives in the model service) and the gateway's
address (argument `target`, else $LLAMA_GRPC_ADDR, else localhost:50051).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, TypedDict

import grpc

from llama.v1 import gateway_pb2 as pb
from llama.v1 import gateway_pb2_grpc, types_pb2

Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    """One chat turn, as in the seed."""

    role: Role
    content: str


class CompletionPrediction(TypedDict, total=False):
    """A text completion, as in the seed."""

    generation: str
    tokens: list[str]  # only with logprobs
    logprobs: list[float]  # only with logprobs


class ChatPrediction(TypedDict, total=False):
    """A chat answer, as in the seed (logprobs are floats, not the seed's List[str] typo)."""

    generation: Message
    tokens: list[str]  # only with logprobs
    logprobs: list[float]  # only with logprobs


Dialog = list[Message]
_ROLES = {"system": types_pb2.ROLE_SYSTEM, "user": types_pb2.ROLE_USER, "assistant": types_pb2.ROLE_ASSISTANT}


class Llama:
    """A client of llama.v1.GatewayService with the seed's text_completion and chat_completion."""

    def __init__(
        self,
        target: str | None = None,
        api_key: str | None = None,
        root_certificates: bytes | None = None,
        timeout: float | None = None,
    ) -> None:
        target = target or os.environ.get("LLAMA_GRPC_ADDR", "localhost:50051")
        if root_certificates is not None:
            self.channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates))
        else:
            self.channel = grpc.insecure_channel(target)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {api_key}")] if api_key else None
        self.timeout = timeout

    @staticmethod
    def build(
        ckpt_dir: str | None = None,
        tokenizer_path: str | None = None,
        max_seq_len: int | None = None,
        max_batch_size: int | None = None,
        model_parallel_size: int | None = None,
        *,
        target: str | None = None,
        api_key: str | None = None,
    ) -> Llama:
        """The seed's constructor: the checkpoint arguments are the service's business and are ignored."""
        del ckpt_dir, tokenizer_path, max_seq_len, max_batch_size, model_parallel_size
        return Llama(target=target, api_key=api_key or os.environ.get("LLAMA_GRPC_API_KEY"))

    def text_completion(
        self,
        prompts: Sequence[str],
        temperature: float = 0.6,
        top_p: float = 0.9,
        max_gen_len: int | None = None,
        logprobs: bool = False,
        echo: bool = False,
    ) -> list[CompletionPrediction]:
        """Continue each prompt, as the seed's text_completion."""
        req = pb.TextCompletionRequest(
            prompts=list(prompts), temperature=temperature, top_p=top_p, logprobs=logprobs, echo=echo
        )
        if max_gen_len is not None:
            req.max_gen_len = max_gen_len
        resp = self.stub.TextCompletion(req, timeout=self.timeout, metadata=self.metadata)
        if logprobs:
            return [
                {"generation": p.generation, "tokens": list(p.tokens), "logprobs": list(p.logprobs)}
                for p in resp.predictions
            ]
        return [{"generation": p.generation} for p in resp.predictions]

    def chat_completion(
        self,
        dialogs: Sequence[Dialog],
        temperature: float = 0.6,
        top_p: float = 0.9,
        max_gen_len: int | None = None,
        logprobs: bool = False,
    ) -> list[ChatPrediction]:
        """Answer each dialog, as the seed's chat_completion."""
        proto_dialogs = []
        for i, dialog in enumerate(dialogs):
            messages = []
            for j, m in enumerate(dialog):
                if m["role"] not in _ROLES:
                    raise ValueError(f"dialogs[{i}][{j}]: role must be system, user or assistant, got {m['role']!r}")
                messages.append(types_pb2.Message(role=_ROLES[m["role"]], content=m["content"]))
            proto_dialogs.append(types_pb2.Dialog(messages=messages))
        req = pb.ChatCompletionRequest(dialogs=proto_dialogs, temperature=temperature, top_p=top_p, logprobs=logprobs)
        if max_gen_len is not None:
            req.max_gen_len = max_gen_len
        resp = self.stub.ChatCompletion(req, timeout=self.timeout, metadata=self.metadata)
        out: list[ChatPrediction] = []
        for p in resp.predictions:
            pred: ChatPrediction = {"generation": {"role": "assistant", "content": p.generation.content}}
            if logprobs:
                pred["tokens"], pred["logprobs"] = list(p.tokens), list(p.logprobs)
            out.append(pred)
        return out

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()
