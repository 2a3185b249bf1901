"""The gateway end to end: the three real services as subprocesses on free ports (issue: gateway)."""

from __future__ import annotations

import datetime
import re
import time
import urllib.request
from dataclasses import replace

import grpc
import pytest
import sentencepiece as spm
import torch

from llama.v1 import gateway_pb2 as pb
from llama.v1 import gateway_pb2_grpc, model_pb2, model_pb2_grpc
from llama.v1 import types_pb2 as types
from llama_grpc.launch import health_status
from model_svc.hf import hf_model
from tests.conftest import SLOW
from tests.stack import gateway_service, model_service, tokenizer_service
from tests.test_tokenizer_svc import reference_ids

MAX_SEQ_LEN = 512


@pytest.fixture(scope="module")
def stack(tokenizer_path, slow_ckpt):
    """Tokenizer, model (1 rank, the SLOW weights) and gateway."""
    tok = tokenizer_service(tokenizer_path)
    model = model_service(slow_ckpt[0], 1, "--max-seq-len", str(MAX_SEQ_LEN), "--max-batch-size", "16")
    gw = gateway_service(tok.address, model.address)
    yield tok, model, gw
    for svc in (gw, model, tok):
        svc.stop()


@pytest.fixture(scope="module")
def gateway(stack):
    with grpc.insecure_channel(stack[2].address) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


@pytest.fixture(scope="module")
def engine(stack):
    with grpc.insecure_channel(stack[1].address) as channel:
        yield model_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="module")
def sp(tokenizer_path):
    return spm.SentencePieceProcessor(model_file=str(tokenizer_path))


@pytest.fixture(scope="module")
def reference(slow_ckpt):
    """transformers' LlamaForCausalLM on the stack's weights."""
    from model_svc.layout import random_state_dict

    return hf_model(random_state_dict(SLOW, seed=2), replace(SLOW, max_seq_len=MAX_SEQ_LEN))


def hf_greedy(reference, prompt: list[int], n: int, eos: int = 2) -> tuple[list[int], list[float], list[float]]:
    """Greedy continuation cut at EOS, its logprobs, and the prompt's own logprobs (first 0)."""
    out = reference.generate(
        torch.tensor([prompt]), max_new_tokens=n, do_sample=False, eos_token_id=eos, pad_token_id=0
    )
    gen = out[0, len(prompt) :].tolist()
    if eos in gen:
        gen = gen[: gen.index(eos)]
    with torch.no_grad():
        logp = torch.log_softmax(reference(torch.tensor([prompt + gen])).logits[0].double(), dim=-1)
    seq = prompt + gen
    lps = [0.0] + [logp[i - 1, seq[i]].item() for i in range(1, len(seq))]
    return gen, lps[len(prompt) :], lps[: len(prompt)]


def close(a, b, tol: float = 1e-4) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


TEXTS = ["Hello world", "The quick brown fox jumps over", "你好世界 😀 naïve café 12345"]


def test_text_completion_is_the_seeds_with_transformers_tokens(gateway, sp, reference) -> None:
    resp = gateway.TextCompletion(pb.TextCompletionRequest(prompts=TEXTS, temperature=0, max_gen_len=24, logprobs=True))
    for text, pred in zip(TEXTS, resp.predictions, strict=True):
        prompt = [sp.bos_id(), *sp.encode(text)]
        gen, lps, _ = hf_greedy(reference, prompt, 24)
        assert pred.generation == sp.decode(gen)
        assert list(pred.tokens) == [sp.decode([t]) for t in gen]
        assert close(pred.logprobs, lps)
        assert pred.finish_reason == (types.FINISH_REASON_LENGTH if len(gen) == 24 else types.FINISH_REASON_EOS)
        assert (pred.prompt_token_count, pred.generation_token_count) == (len(prompt), len(gen))


def test_echo_returns_the_prompt_with_its_logprobs(gateway, sp, reference) -> None:
    resp = gateway.TextCompletion(
        pb.TextCompletionRequest(prompts=TEXTS[1:], temperature=0, max_gen_len=10, logprobs=True, echo=True)
    )
    for text, pred in zip(TEXTS[1:], resp.predictions, strict=True):
        prompt = [sp.bos_id(), *sp.encode(text)]
        gen, lps, prompt_lps = hf_greedy(reference, prompt, 10)
        assert pred.generation == sp.decode(prompt + gen)
        assert list(pred.tokens) == [sp.decode([t]) for t in prompt + gen]
        assert close(pred.logprobs, prompt_lps + lps)


DIALOGS = [
    [{"role": "user", "content": "what is the recipe of mayonnaise?"}],
    [
        {"role": "system", "content": "Always answer with emojis"},
        {"role": "user", "content": "How to go from Beijing to NY?"},
        {"role": "assistant", "content": "✈️ 🗽"},
        {"role": "user", "content": "and back? 你好"},
    ],
]
ROLE = {"system": types.ROLE_SYSTEM, "user": types.ROLE_USER, "assistant": types.ROLE_ASSISTANT}


def to_proto(dialog: list[dict]) -> types.Dialog:
    return types.Dialog(messages=[types.Message(role=ROLE[m["role"]], content=m["content"]) for m in dialog])


def test_chat_completion_is_the_seeds_with_transformers_tokens(gateway, sp, reference) -> None:
    resp = gateway.ChatCompletion(
        pb.ChatCompletionRequest(dialogs=[to_proto(d) for d in DIALOGS], temperature=0, max_gen_len=20, logprobs=True)
    )
    for dialog, pred in zip(DIALOGS, resp.predictions, strict=True):
        gen, lps, _ = hf_greedy(reference, reference_ids(sp, dialog), 20)
        assert pred.generation.role == types.ROLE_ASSISTANT
        assert pred.generation.content == sp.decode(gen)
        assert list(pred.tokens) == [sp.decode([t]) for t in gen]
        assert close(pred.logprobs, lps)


def stream_text(gateway, **kw) -> tuple[dict[int, str], dict[int, int], dict[int, list[str]]]:
    texts: dict[int, str] = {}
    finish: dict[int, int] = {}
    pieces: dict[int, list[str]] = {}
    for m in gateway.StreamTextCompletion(pb.StreamTextCompletionRequest(**kw)):
        assert m.index not in finish, "message after the prompt's last one"
        texts[m.index] = texts.get(m.index, "") + m.text
        pieces.setdefault(m.index, []).extend(m.tokens)
        if m.finish_reason:
            finish[m.index] = m.finish_reason
    return texts, finish, pieces


@pytest.mark.parametrize(
    "kw",
    [
        {"temperature": 0.0, "max_gen_len": 40},
        {"temperature": 1.0, "seed": 5, "max_gen_len": 40, "logprobs": True},
        {"temperature": 0.0, "max_gen_len": 12, "echo": True},  # the prompts' emoji arrive as byte tokens
    ],
)
def test_streams_concatenate_to_unary(gateway, kw: dict) -> None:
    prompts = [*TEXTS, "🦙🧠 𝔘𝔫𝔦 ✓"]
    unary = gateway.TextCompletion(pb.TextCompletionRequest(prompts=prompts, **kw))
    texts, finish, pieces = stream_text(gateway, prompts=prompts, **kw)
    assert [texts[i] for i in range(len(prompts))] == [p.generation for p in unary.predictions]
    assert [finish[i] for i in range(len(prompts))] == [p.finish_reason for p in unary.predictions]
    assert [pieces.get(i, []) for i in range(len(prompts))] == [list(p.tokens) for p in unary.predictions]
    if kw.get("echo"):
        assert unary.predictions[3].generation.startswith("🦙🧠 𝔘𝔫𝔦 ✓")
    dialogs = [to_proto(d) for d in DIALOGS]
    chat_kw = {k: v for k, v in kw.items() if k != "echo"}
    chat = gateway.ChatCompletion(pb.ChatCompletionRequest(dialogs=dialogs, **chat_kw))
    got: dict[int, str] = {}
    for m in gateway.StreamChatCompletion(pb.StreamChatCompletionRequest(dialogs=dialogs, **chat_kw)):
        assert m.role == types.ROLE_ASSISTANT
        got[m.index] = got.get(m.index, "") + m.text
    assert [got.get(i, "") for i in range(2)] == [p.generation.content for p in chat.predictions]


def cancelled_rows(model) -> float:
    """Rows the model service took out of its batch because their caller went away."""
    with urllib.request.urlopen(f"http://127.0.0.1:{model.metrics_port}/metrics", timeout=5) as r:
        m = re.search(r'^llama_engine_finished_rows_total\{reason="cancelled"\} (\S+)$', r.read().decode(), re.M)
    return float(m.group(1)) if m else 0.0


def test_stop_string_spanning_two_tokens(stack, gateway, engine, sp) -> None:
    prompt = "The quick brown fox jumps over"
    text = (
        gateway.TextCompletion(pb.TextCompletionRequest(prompts=[prompt], temperature=0, max_gen_len=40))
        .predictions[0]
        .generation
    )
    direct = engine.Generate(
        model_pb2.GenerateRequest(
            prompt_tokens=[types.TokenIds(ids=[sp.bos_id(), *sp.encode(prompt)])],
            max_gen_len=40,
            temperature=0,
            top_p=0.9,
            stop_ids=[2],
        )
    )
    ids = list(direct.generations[0].tokens)
    assert sp.decode(ids) == text
    # A token boundary b inside the text with two visible characters on each side.
    stop = None
    for k in range(2, len(ids) - 1):
        b = len(sp.decode(ids[:k]))
        candidate = text[b - 2 : b + 2]
        if (
            text[:b] == sp.decode(ids[:k])
            and len(candidate) == 4
            and " " not in candidate
            and "\ufffd" not in candidate
            and text.find(candidate) == b - 2
        ):
            stop = candidate
            needed = next(j for j in range(k, len(ids) + 1) if len(sp.decode(ids[:j])) >= b + 2)
            break
    assert stop is not None, f"no stop string across a token boundary in {text!r}"
    before = cancelled_rows(stack[1])
    for call in ("unary", "stream"):
        req = {"prompts": [prompt], "temperature": 0, "max_gen_len": 40, "stop": ["zzz-never", stop]}
        if call == "unary":
            pred = gateway.TextCompletion(pb.TextCompletionRequest(**req)).predictions[0]
            generation, finish = pred.generation, pred.finish_reason
            assert pred.generation_token_count == needed < 40
        else:
            texts, finishes, _ = stream_text(gateway, **req)
            generation, finish = texts[0], finishes[0]
        assert generation == text[: text.find(stop)] and stop not in generation
        assert finish == types.FINISH_REASON_STOP
    # Both rows left the model's batch as cancelled, before their 40 tokens.
    deadline = time.monotonic() + 5
    while cancelled_rows(stack[1]) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cancelled_rows(stack[1]) == before + 2


def code_and_details(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


INVALID = [
    ({"prompts": []}, r"prompts: at least one is required"),
    ({"prompts": ["a"] * 17}, r"prompts: 17 given, at most max_batch_size 16"),
    ({"prompts": ["a"], "temperature": -0.5}, r"temperature must be finite and >= 0, got -0.5"),
    ({"prompts": ["a"], "temperature": float("nan")}, r"temperature must be finite and >= 0, got nan"),
    ({"prompts": ["a"], "temperature": float("inf")}, r"temperature must be finite"),
    ({"prompts": ["a"], "top_p": 0.0}, r"top_p must be in \(0, 1\], got 0"),
    ({"prompts": ["a"], "top_p": 1.5}, r"top_p must be in \(0, 1\], got 1.5"),
    ({"prompts": ["a"], "max_gen_len": 0}, r"max_gen_len must be at least 1, got 0"),
    ({"prompts": ["a"], "max_gen_len": MAX_SEQ_LEN}, r"max_gen_len must be 1 to max_seq_len - 1 = 511, got 512"),
    ({"prompts": ["a"], "stop": ["x"] * 9}, r"stop: 9 strings, at most 8"),
    ({"prompts": ["a"], "stop": ["ok", "é" * 129]}, r"stop\[1\]: 258 bytes, at most 256"),
    ({"prompts": ["a"], "stop": [""]}, r"stop\[0\] is empty"),
]


@pytest.mark.parametrize(("kw", "message"), INVALID, ids=[m for _, m in INVALID])
def test_validation_before_any_downstream_call(gateway, engine, kw: dict, message: str) -> None:
    steps = engine.GetEngineInfo(model_pb2.GetEngineInfoRequest()).steps
    for call in (
        lambda: gateway.TextCompletion(pb.TextCompletionRequest(**kw)),
        lambda: list(gateway.StreamTextCompletion(pb.StreamTextCompletionRequest(**kw))),
    ):
        code, details = code_and_details(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and re.search(message, details), details
    assert engine.GetEngineInfo(model_pb2.GetEngineInfoRequest()).steps == steps


def test_prompt_that_leaves_no_room_and_downstream_errors_pass_through(gateway, engine) -> None:
    steps = engine.GetEngineInfo(model_pb2.GetEngineInfoRequest()).steps
    code, details = code_and_details(
        lambda: gateway.TextCompletion(pb.TextCompletionRequest(prompts=["ok", "hello world " * 300]))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(r"prompts\[1\] is \d+ tokens: max_seq_len 512 leaves no room to generate", details), details
    dialogs = [to_proto(DIALOGS[0]), types.Dialog(messages=[types.Message(role=types.ROLE_ASSISTANT, content="x")])]
    code, details = code_and_details(lambda: gateway.ChatCompletion(pb.ChatCompletionRequest(dialogs=dialogs)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "dialogs[1].messages[0]: expected role user" in details
    code, details = code_and_details(
        lambda: list(gateway.StreamChatCompletion(pb.StreamChatCompletionRequest(dialogs=[types.Dialog()])))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "dialogs[0]: a dialog needs at least one message" in details
    assert engine.GetEngineInfo(model_pb2.GetEngineInfoRequest()).steps == steps


def test_cancelled_stream_frees_its_model_rows(gateway, engine) -> None:
    call = gateway.StreamTextCompletion(pb.StreamTextCompletionRequest(prompts=TEXTS, temperature=0, max_gen_len=400))
    next(call)
    assert engine.GetEngineInfo(model_pb2.GetEngineInfoRequest()).active_rows == len(TEXTS)
    call.cancel()
    deadline = time.monotonic() + 10
    while engine.GetEngineInfo(model_pb2.GetEngineInfoRequest()).active_rows and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.GetEngineInfo(model_pb2.GetEngineInfoRequest()).active_rows == 0


def test_deadline_propagates_to_the_model(gateway, engine) -> None:
    code, _ = code_and_details(
        lambda: gateway.TextCompletion(pb.TextCompletionRequest(prompts=TEXTS, max_gen_len=400), timeout=0.5)
    )
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 10
    while engine.GetEngineInfo(model_pb2.GetEngineInfoRequest()).active_rows and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.GetEngineInfo(model_pb2.GetEngineInfoRequest()).active_rows == 0


def test_model_info(gateway) -> None:
    info = gateway.GetModelInfo(pb.GetModelInfoRequest())
    assert (info.max_seq_len, info.max_batch_size, info.vocab_size, info.eos_id, info.replicas) == (512, 16, 1000, 2, 1)
    assert (info.default_temperature, info.max_stop) == (pytest.approx(0.6), 8)


def test_two_replicas_share_the_load_and_survive_one_stopping(stack, slow_ckpt) -> None:
    tok, first, _ = stack
    second = model_service(
        slow_ckpt[0], 1, "--max-seq-len", str(MAX_SEQ_LEN), "--max-batch-size", "16", name="model-replica2"
    )
    gw = gateway_service(tok.address, f"{first.address},{second.address}", metrics=False)
    try:
        stubs = [model_pb2_grpc.ModelServiceStub(grpc.insecure_channel(s.address)) for s in (first, second)]
        before = [s.GetEngineInfo(model_pb2.GetEngineInfoRequest()).steps for s in stubs]
        gateway = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(gw.address))
        assert gateway.GetModelInfo(pb.GetModelInfoRequest()).replicas == 2
        for _ in range(6):
            gateway.TextCompletion(pb.TextCompletionRequest(prompts=["hello"], max_gen_len=4))
        after = [s.GetEngineInfo(model_pb2.GetEngineInfoRequest()).steps for s in stubs]
        assert all(a - b >= 8 for a, b in zip(after, before, strict=True)), (before, after)
        second.stop()
        for _ in range(4):
            resp = gateway.TextCompletion(pb.TextCompletionRequest(prompts=["hello"], max_gen_len=4), timeout=30)
            assert resp.predictions[0].generation_token_count == 4
    finally:
        gw.stop()
        second.stop()


def self_signed(tmp_path) -> tuple[bytes, bytes]:
    """A certificate for localhost and its key, made here."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_cert = cert.public_bytes(serialization.Encoding.PEM)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem_cert, pem_key


def test_api_keys_and_tls(stack, tmp_path, monkeypatch) -> None:
    tok, model, _ = stack
    cert, key = self_signed(tmp_path)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "keys.txt").write_text("# keys\nfile-key\n")
    monkeypatch.setenv("LLAMA_GRPC_API_KEYS", "env-key")
    from llama_grpc.launch import Service, free_port, python_module

    port = free_port()
    gw = Service(
        "gateway-tls",
        python_module(
            "gateway",
            "--tokenizer-addr",
            tok.address,
            "--model-addr",
            model.address,
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--metrics-port",
            "0",
            "--api-key",
            "flag-key",
            "--api-keys-file",
            str(tmp_path / "keys.txt"),
            "--tls-cert",
            str(tmp_path / "cert.pem"),
            "--tls-key",
            str(tmp_path / "key.pem"),
        ),
        port,
    )
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=cert)
        channel = grpc.secure_channel(f"localhost:{port}", creds)
        grpc.channel_ready_future(channel).result(timeout=30)
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + 30
        health = health_pb2_grpc.HealthStub(channel)
        while health.Check(health_pb2.HealthCheckRequest()).status != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline
            time.sleep(0.2)  # health needs no key
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        req = pb.TextCompletionRequest(prompts=["hello"], max_gen_len=3)
        code, details = code_and_details(lambda: stub.TextCompletion(req))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "API key" in details
        code, _ = code_and_details(
            lambda: list(stub.StreamTextCompletion(pb.StreamTextCompletionRequest(prompts=["x"])))
        )
        assert code == grpc.StatusCode.UNAUTHENTICATED
        code, _ = code_and_details(lambda: stub.TextCompletion(req, metadata=[("authorization", "Bearer wrong")]))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        for k in ("flag-key", "file-key", "env-key"):
            resp = stub.TextCompletion(req, metadata=[("authorization", f"Bearer {k}")])
            assert resp.predictions[0].generation_token_count == 3
        assert health_status(f"127.0.0.1:{port}") != "SERVING"  # a plaintext client cannot talk to it
    finally:
        gw.stop()


def test_gateway_metrics_count_requests(stack, gateway) -> None:
    gateway.TextCompletion(pb.TextCompletionRequest(prompts=["hello"], max_gen_len=3))
    with urllib.request.urlopen(f"http://127.0.0.1:{stack[2].metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert re.search(r'llama_rpc_requests_total\{code="OK",method="TextCompletion",service="gateway"\} [1-9]', text)
    assert re.search(
        r'llama_rpc_requests_total\{code="INVALID_ARGUMENT",method="TextCompletion",service="gateway"\}', text
    )
    assert "llama_gateway_time_to_first_token_seconds_count" in text


def test_ignore_eos_and_stream_token_counts(gateway) -> None:
    req = {"prompts": TEXTS, "temperature": 0.0, "max_gen_len": 30, "ignore_eos": True}
    unary = gateway.TextCompletion(pb.TextCompletionRequest(**req))
    assert [p.generation_token_count for p in unary.predictions] == [30] * 3
    assert {p.finish_reason for p in unary.predictions} == {types.FINISH_REASON_LENGTH}
    counts: dict[int, int] = {}
    for m in gateway.StreamTextCompletion(pb.StreamTextCompletionRequest(**req)):
        counts[m.index] = counts.get(m.index, 0) + m.token_count
    assert counts == {0: 30, 1: 30, 2: 30}
