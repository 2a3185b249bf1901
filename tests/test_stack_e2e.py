"""The stack as users meet it: grpcurl, a Node.js client, the terminal and Python clients, metrics.

These tests take a running stack from $LLAMA_GRPC_GATEWAY (docker compose's `tests` service sets
it) and otherwise start the three services themselves.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from gateway.llama import Llama
from llama.v1 import gateway_pb2 as pb
from llama.v1 import gateway_pb2_grpc
from llama.v1 import types_pb2 as types
from tests.conftest import ROOT
from tests.stack import metric, scrape

CHAT_JSON = json.dumps(
    {
        "dialogs": [{"messages": [{"role": "ROLE_USER", "content": "Tell me a story about a llama."}]}],
        "max_gen_len": 24,
        "temperature": 0,
    }
)


def grpcurl(*args: str, data: str | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    cmd = [exe, "-plaintext", *(["-d", data] if data is not None else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def unary_chat(stack) -> str:
    """The unary answer to CHAT_JSON, from Python."""
    with grpc.insecure_channel(stack.gateway) as ch:
        req = json_format.Parse(CHAT_JSON, pb.ChatCompletionRequest())
        return gateway_pb2_grpc.GatewayServiceStub(ch).ChatCompletion(req).predictions[0].generation.content


def test_grpcurl_lists_and_describes_through_reflection(live_stack) -> None:
    out = grpcurl(live_stack.gateway, "list")
    assert out.returncode == 0, out.stderr
    assert {"llama.v1.GatewayService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(
        out.stdout.split()
    )
    out = grpcurl(live_stack.gateway, "describe", "llama.v1.GatewayService")
    assert out.returncode == 0, out.stderr
    for rpc in ("TextCompletion", "ChatCompletion", "StreamTextCompletion", "StreamChatCompletion", "GetModelInfo"):
        assert f"rpc {rpc}" in out.stdout
    out = grpcurl(live_stack.gateway, "describe", "llama.v1.ChatCompletionRequest")
    assert "repeated .llama.v1.Dialog dialogs" in out.stdout and "optional float temperature" in out.stdout


def test_grpcurl_chat_completion_with_json(live_stack) -> None:
    out = grpcurl(live_stack.gateway, "llama.v1.GatewayService/ChatCompletion", data=CHAT_JSON)
    assert out.returncode == 0, out.stderr
    pred = json.loads(out.stdout)["predictions"][0]
    assert pred["generation"]["role"] == "ROLE_ASSISTANT"
    assert pred["generation"]["content"] == unary_chat(live_stack)
    assert pred["finish_reason"] in ("FINISH_REASON_EOS", "FINISH_REASON_LENGTH")


def test_grpcurl_stream_chat_completion(live_stack) -> None:
    out = grpcurl(live_stack.gateway, "llama.v1.GatewayService/StreamChatCompletion", data=CHAT_JSON)
    assert out.returncode == 0, out.stderr
    messages = [json.loads(m) for m in re.split(r"(?<=\})\n(?=\{)", out.stdout.strip())]
    assert len(messages) >= 2
    assert "".join(m.get("text", "") for m in messages) == unary_chat(live_stack)
    assert messages[-1]["finish_reason"] in ("FINISH_REASON_EOS", "FINISH_REASON_LENGTH")


def test_grpcurl_health(live_stack) -> None:
    out = grpcurl(live_stack.gateway, "grpc.health.v1.Health/Check", data="{}")
    assert out.returncode == 0 and json.loads(out.stdout) == {"status": "SERVING"}, out.stderr
    out = grpcurl(live_stack.gateway, "grpc.health.v1.Health/Check", data='{"service": "llama.v1.GatewayService"}')
    assert json.loads(out.stdout) == {"status": "SERVING"}


def node(*args: str) -> subprocess.CompletedProcess:
    client = ROOT / "examples" / "node" / "client.js"
    return subprocess.run(["node", str(client), *args], capture_output=True, text=True, timeout=120, check=False)


def test_node_client_chat_and_stream(live_stack) -> None:
    assert (ROOT / "examples" / "node" / "node_modules" / "@grpc" / "grpc-js").is_dir(), "run `make node` first"
    chat = node(
        "--addr",
        live_stack.gateway,
        "--temperature",
        "0",
        "--max-gen-len",
        "24",
        "chat",
        "Tell me a story about a llama.",
    )
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.rstrip("\n") == unary_chat(live_stack)
    stream = node(
        "--addr",
        live_stack.gateway,
        "--json",
        "--temperature",
        "0",
        "--max-gen-len",
        "24",
        "stream",
        "Tell me a story about a llama.",
    )
    assert stream.returncode == 0, stream.stderr
    messages = [json.loads(line) for line in stream.stdout.splitlines()]
    assert len(messages) >= 2 and all(m["role"] == "ROLE_ASSISTANT" for m in messages)
    assert "".join(m["text"] for m in messages) == unary_chat(live_stack)
    assert messages[-1]["finish_reason"] != "FINISH_REASON_UNSPECIFIED"
    bad = node("--addr", live_stack.gateway, "--temperature", "-1", "chat", "hi")
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "temperature" in bad.stderr


def client(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.client", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_terminal_client(live_stack) -> None:
    out = client(
        "--addr",
        live_stack.gateway,
        "chat",
        "Tell me a story about a llama.",
        "--temperature",
        "0",
        "--max-gen-len",
        "24",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == unary_chat(live_stack) + "\n"
    seeded = ("--addr", live_stack.gateway, "complete", "Once upon a time", "--max-gen-len", "8", "--seed", "3")
    out = client(*seeded, "--temperature", "0.8", "--json", "--logprobs")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert sum(len(m["logprobs"]) for m in lines) == 8 and lines[-1]["finish_reason"] == "FINISH_REASON_LENGTH"
    again = client(*seeded, "--temperature", "0.8", "--json", "--logprobs")
    assert again.stdout == out.stdout  # same seed, same text
    info = client("--addr", live_stack.gateway, "info")
    assert json.loads(info.stdout)["max_seq_len"] == 512
    bad = client("--addr", live_stack.gateway, "chat", "hi", "--top-p", "2")
    assert bad.returncode == 1 and "INVALID_ARGUMENT: top_p must be in (0, 1]" in bad.stderr


def test_python_client_has_the_seeds_api(live_stack) -> None:
    generator = Llama.build(
        ckpt_dir="llama-2-7b-chat/",
        tokenizer_path="tokenizer.model",
        max_seq_len=512,
        max_batch_size=4,
        target=live_stack.gateway,
    )
    dialogs = [
        [{"role": "user", "content": "Tell me a story about a llama."}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
    ]
    results = generator.chat_completion(dialogs, max_gen_len=24, temperature=0.0, top_p=0.9)
    assert results[0] == {"generation": {"role": "assistant", "content": unary_chat(live_stack)}}
    assert set(results[1]) == {"generation"} and results[1]["generation"]["role"] == "assistant"
    with_lp = generator.chat_completion(dialogs[:1], max_gen_len=24, temperature=0.0, logprobs=True)[0]
    assert set(with_lp) == {"generation", "tokens", "logprobs"}
    assert len(with_lp["tokens"]) == len(with_lp["logprobs"]) and all(lp <= 0 for lp in with_lp["logprobs"])
    assert "".join(with_lp["tokens"]).replace(" ", "") == with_lp["generation"]["content"].replace(" ", "")
    texts = generator.text_completion(["Once upon a time", "The cat"], max_gen_len=8, temperature=0.0, echo=True)
    assert texts[0]["generation"].startswith("Once upon a time") and set(texts[0]) == {"generation"}
    with pytest.raises(grpc.RpcError) as err:
        generator.text_completion(["x"], temperature=-1.0)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    generator.close()


def test_metrics_during_a_request(live_stack) -> None:
    urls = live_stack.metrics
    assert urls.get("gateway") and urls.get("model"), "metrics URLs are needed (LLAMA_GRPC_*_METRICS)"
    before = scrape(urls["model"])
    with grpc.insecure_channel(live_stack.gateway) as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        dialog = types.Dialog(messages=[types.Message(role=types.ROLE_USER, content="Tell me a story.")])
        stream = stub.StreamChatCompletion(pb.StreamChatCompletionRequest(dialogs=[dialog] * 3, max_gen_len=200))
        next(stream)
        during = scrape(urls["model"])  # scraped while the three rows run
        rest = threading.Thread(target=lambda: list(stream))
        rest.start()
        rest.join(120)
    after_model, gw = scrape(urls["model"]), scrape(urls["gateway"])
    assert metric(during, "llama_engine_active_rows") >= 1
    assert metric(during, "llama_engine_queued_requests") >= 0
    assert metric(after_model, "llama_engine_generated_tokens_total") > metric(
        before, "llama_engine_generated_tokens_total"
    )
    assert metric(after_model, "llama_engine_prompt_tokens_total") > metric(before, "llama_engine_prompt_tokens_total")
    assert metric(after_model, "llama_engine_time_to_first_token_seconds_count") >= 3
    assert metric(after_model, "llama_engine_inter_token_latency_seconds_count") > 0
    assert metric(gw, r'llama_rpc_requests_total\{code="OK",method="StreamChatCompletion",service="gateway"\}') >= 1
    assert metric(gw, "llama_gateway_time_to_first_token_seconds_count") >= 3
    assert metric(gw, "llama_gateway_inter_token_latency_seconds_count") > 0
    assert metric(gw, "llama_gateway_generated_tokens_total") > 0
    if urls.get("tokenizer"):
        tok = scrape(urls["tokenizer"])
        assert metric(tok, r'llama_rpc_requests_total\{code="OK",method="EncodeDialogs",service="tokenizer"\}') >= 1


def test_model_info(live_stack) -> None:
    with grpc.insecure_channel(live_stack.gateway) as ch:
        info = gateway_pb2_grpc.GatewayServiceStub(ch).GetModelInfo(pb.GetModelInfoRequest())
    assert info.max_seq_len >= 128 and info.vocab_size > 0 and info.replicas >= 1


def readme_commands() -> list[str]:
    """The grpcurl and client command lines of the README's code blocks."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith((".venv/bin/grpcurl", ".venv/bin/python -m gateway.client"))]


def test_readme_commands_work_as_written(live_stack) -> None:
    commands = readme_commands()
    assert len(commands) >= 9
    venv_bin = Path(sys.executable).parent
    for line in commands:
        cmd = line.split("#", 1)[0].strip().replace("localhost:50051", live_stack.gateway)
        cmd = cmd.replace(".venv/bin/", f"{venv_bin}/")
        env = {"LLAMA_GRPC_ADDR": live_stack.gateway, "PATH": f"{venv_bin}:/usr/bin:/bin"}
        out = subprocess.run(
            cmd, shell=True, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, check=False
        )
        if '"top_p": 1.5' in cmd:  # the README's example of an error
            assert out.returncode != 0 and "Code: InvalidArgument" in out.stderr, out.stderr
            assert "Message: top_p must be in (0, 1], got 1.5" in out.stderr
        else:
            assert out.returncode == 0, (line, out.stderr)
            assert out.stdout.strip(), line
