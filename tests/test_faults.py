"""Faults, draining and security of the whole stack (issue: reliability).

kill -9 of model rank 1, of rank 0 and of the tokenizer while streams are in flight: callers get
UNAVAILABLE within 30 s, the gateway reports NOT_SERVING, the service's supervisor brings it back
(torchrun --max-restarts for the model; this test, on the same port, for the tokenizer) and the
same gateway serves again. Figures are printed (pytest -s shows them).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from llama.v1 import gateway_pb2 as pb
from llama.v1 import gateway_pb2_grpc, tokenizer_pb2, tokenizer_pb2_grpc
from llama.v1 import types_pb2 as types
from llama_grpc.launch import Service, free_port, health_status, python_module
from tests.stack import gateway_service, model_service, tokenizer_service

PROMPTS = ["Once upon a time", "The quick brown fox", "Hello world"]


def wait_for(predicate, timeout: float, step: float = 0.1) -> float:
    """Seconds until predicate() is true; fails after timeout."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"not true after {timeout} s"
        time.sleep(step)
    return time.monotonic() - start


def start_streams(stub: gateway_pb2_grpc.GatewayServiceStub, n: int = 3) -> list:
    streams = [
        stub.StreamTextCompletion(pb.StreamTextCompletionRequest(prompts=[p], max_gen_len=400, temperature=0))
        for p in PROMPTS[:n]
    ]
    for s in streams:
        next(s)  # each is running
    return streams


def outcome(stream) -> grpc.StatusCode:
    try:
        for _ in stream:
            pass
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def serves(stub: gateway_pb2_grpc.GatewayServiceStub) -> bool:
    try:
        resp = stub.TextCompletion(pb.TextCompletionRequest(prompts=["hello"], max_gen_len=3), timeout=10)
    except grpc.RpcError:
        return False
    return resp.predictions[0].generation_token_count == 3


@pytest.fixture
def tokenizer(tokenizer_path):
    svc = tokenizer_service(tokenizer_path)
    yield svc
    svc.stop()


@pytest.mark.parametrize("rank", [1, 0])
def test_kill_9_of_a_model_rank(tokenizer, slow_ckpt, rank: int) -> None:
    model = model_service(
        slow_ckpt[1],
        2,
        "--max-seq-len",
        "512",
        "--max-batch-size",
        "8",
        "--failure-linger",
        "2",
        name=f"model-kill{rank}",
        metrics=False,
        max_restarts=2,
    )
    gw = gateway_service(tokenizer.address, model.address, "--connect-timeout", "5", metrics=False)
    try:
        stub = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(gw.address))
        streams = start_streams(stub)
        killed_at = time.monotonic()
        os.kill(model.children()[rank], signal.SIGKILL)
        codes = [outcome(s) for s in streams]
        failed_in = time.monotonic() - killed_at
        assert codes == [grpc.StatusCode.UNAVAILABLE] * 3 and failed_in < 30
        not_serving_in = wait_for(lambda: health_status(gw.address) == "NOT_SERVING", 30) + failed_in
        # torchrun starts a new group; the same gateway reconnects to it.
        back_in = wait_for(lambda: serves(stub), 120, step=0.5) + not_serving_in
        wait_for(lambda: health_status(gw.address) == "SERVING", 10)
        print(
            f"\nkill -9 rank {rank}: callers UNAVAILABLE after {failed_in:.2f} s, gateway NOT_SERVING by "
            f"{not_serving_in:.2f} s, serving again after {back_in:.1f} s"
        )
    finally:
        gw.stop()
        model.stop()


def test_kill_9_of_the_tokenizer(tokenizer_path, slow_ckpt) -> None:
    tok = tokenizer_service(tokenizer_path)
    model = model_service(slow_ckpt[0], 1, "--max-seq-len", "512", "--max-batch-size", "8", metrics=False)
    gw = gateway_service(tok.address, model.address, "--connect-timeout", "5", metrics=False)
    restarted = None
    try:
        stub = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(gw.address))
        streams = start_streams(stub)
        killed_at = time.monotonic()
        tok.proc.send_signal(signal.SIGKILL)
        tok.proc.wait()
        # New callers fail fast; streams already past tokenization finish (or fail), none hangs.
        with pytest.raises(grpc.RpcError) as err:
            stub.TextCompletion(pb.TextCompletionRequest(prompts=["hi"], max_gen_len=3), timeout=60)
        failed_in = time.monotonic() - killed_at
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and failed_in < 30, err.value.details()
        assert "tokenizer" in err.value.details()
        assert {outcome(s) for s in streams} <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
        wait_for(lambda: health_status(gw.address) == "NOT_SERVING", 30)
        # The supervisor (here: this test) starts it again on the same port.
        restarted = Service(
            "tokenizer-again",
            python_module(
                "tokenizer_svc",
                f"--tokenizer-path={tokenizer_path}",
                f"--port={tok.port}",
                "--metrics-port=0",
            ),
            tok.port,
        )
        restarted.wait_healthy(60)
        back_in = wait_for(lambda: serves(stub), 60, step=0.5) + (time.monotonic() - killed_at)
        print(
            f"\nkill -9 tokenizer: new callers UNAVAILABLE after {failed_in:.2f} s, serving again "
            f"{back_in:.1f} s after the kill (restart included)"
        )
    finally:
        for svc in (gw, model, tok, restarted):
            if svc is not None:
                svc.stop()


def test_sigterm_drains_each_service(tokenizer_path, slow_ckpt) -> None:
    tok = tokenizer_service(tokenizer_path)
    model = model_service(slow_ckpt[0], 1, "--max-seq-len", "512", "--max-batch-size", "8", metrics=False)
    gw = gateway_service(tok.address, model.address, metrics=False)
    try:
        stub = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(gw.address))
        # The gateway: its running stream finishes, then it exits 0.
        stream = stub.StreamTextCompletion(pb.StreamTextCompletionRequest(prompts=["Once"], max_gen_len=120))
        first = next(stream)
        gw.signal(signal.SIGTERM)
        rest = list(stream)
        assert rest[-1].finish_reason in (types.FINISH_REASON_LENGTH, types.FINISH_REASON_EOS)
        assert len(first.text + "".join(m.text for m in rest)) > 0
        assert gw.proc.wait(60) == 0
        # The model: rank 0 drains its rows (called directly now that the gateway is gone).
        from llama.v1 import model_pb2, model_pb2_grpc

        mstub = model_pb2_grpc.ModelServiceStub(grpc.insecure_channel(model.address))
        mstream = mstub.StreamGenerate(
            model_pb2.StreamGenerateRequest(
                prompt_tokens=[types.TokenIds(ids=[1, 5, 6])], max_gen_len=100, temperature=0, top_p=1
            )
        )
        next(mstream)
        os.kill(model.children()[0], signal.SIGTERM)
        assert len(list(mstream)) == 99
        assert model.proc.wait(60) == 0  # torchrun too: the group ended cleanly
        # The tokenizer: callers in flight at SIGTERM finish or are refused, none hangs; exit 0.
        tstub = tokenizer_pb2_grpc.TokenizerServiceStub(grpc.insecure_channel(tok.address))
        results: list[grpc.StatusCode] = []

        def caller() -> None:
            for _ in range(200):
                try:
                    tstub.Encode(tokenizer_pb2.EncodeRequest(texts=["some text " * 50]), timeout=30)
                    results.append(grpc.StatusCode.OK)
                except grpc.RpcError as e:
                    results.append(e.code())
                    return

        threads = [threading.Thread(target=caller) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        tok.signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert set(results) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE} and grpc.StatusCode.OK in results
        assert tok.proc.wait(60) == 0
    finally:
        for svc in (gw, model, tok):
            svc.stop()


def _ipv4(word: str) -> str:
    """A /proc/net address word (little-endian hex) as dotted IPv4."""
    return ".".join(str(int(word[i : i + 2], 16)) for i in (6, 4, 2, 0))


def listening_addresses(port: int) -> set[str]:
    """Addresses with a socket listening on port (from /proc/net/tcp and tcp6; v4-mapped shown as IPv4)."""
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) != port or state != "0A":
                continue
            if len(addr) == 8:
                found.add(_ipv4(addr))
            elif addr[:24] == "0000000000000000FFFF0000":
                found.add(_ipv4(addr[24:]))
            else:
                found.add("::" if set(addr) == {"0"} else addr)
    return found


def test_internal_services_bind_loopback_and_keys_cover_every_rpc(tokenizer_path, mha_ckpt, tmp_path) -> None:
    tok = tokenizer_service(tokenizer_path)
    model = model_service(mha_ckpt[0], 1, "--max-seq-len", "512", metrics=False)
    port = free_port()
    gw = Service(
        "gateway-keys",
        python_module(
            "gateway",
            f"--tokenizer-addr={tok.address}",
            f"--model-addr={model.address}",
            f"--port={port}",
            "--metrics-port=0",
            "--api-key=s3cret",
            "--host=127.0.0.1",
        ),
        port,
    )
    try:
        gw.wait_healthy(60)  # health needs no key
        assert listening_addresses(tok.port) == {"127.0.0.1"}
        assert listening_addresses(model.port) == {"127.0.0.1"}
        channel = grpc.insecure_channel(gw.address)
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        dialog = types.Dialog(messages=[types.Message(role=types.ROLE_USER, content="hi")])
        calls = {
            "TextCompletion": lambda md: stub.TextCompletion(
                pb.TextCompletionRequest(prompts=["hi"], max_gen_len=2), metadata=md
            ),
            "ChatCompletion": lambda md: stub.ChatCompletion(
                pb.ChatCompletionRequest(dialogs=[dialog], max_gen_len=2), metadata=md
            ),
            "StreamTextCompletion": lambda md: list(
                stub.StreamTextCompletion(pb.StreamTextCompletionRequest(prompts=["hi"], max_gen_len=2), metadata=md)
            ),
            "StreamChatCompletion": lambda md: list(
                stub.StreamChatCompletion(pb.StreamChatCompletionRequest(dialogs=[dialog], max_gen_len=2), metadata=md)
            ),
            "GetModelInfo": lambda md: stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=md),
        }
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        calls["ServerReflectionInfo"] = lambda md: list(
            reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=md)
        )
        for name, call in calls.items():
            for md in (None, [("authorization", "Bearer wrong")], [("authorization", "s3cret")]):
                with pytest.raises(grpc.RpcError) as err:
                    call(md)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            assert call([("authorization", "Bearer s3cret")]) is not None, name
        assert health_status(gw.address) == "SERVING"
        channel.close()
    finally:
        for svc in (gw, model, tok):
            svc.stop()


def test_prompts_and_generations_are_not_logged(tokenizer_path, mha_ckpt) -> None:
    tok = tokenizer_service(tokenizer_path)
    model = model_service(mha_ckpt[0], 1, "--max-seq-len", "512", metrics=False)
    gw = gateway_service(tok.address, model.address, metrics=False)
    secret = "zebra-violet-1234"
    try:
        stub = gateway_pb2_grpc.GatewayServiceStub(grpc.insecure_channel(gw.address))
        text = stub.TextCompletion(pb.TextCompletionRequest(prompts=[secret], max_gen_len=24, temperature=0))
        generated = text.predictions[0].generation
        dialog = types.Dialog(messages=[types.Message(role=types.ROLE_USER, content=secret)])
        list(stub.StreamChatCompletion(pb.StreamChatCompletionRequest(dialogs=[dialog], max_gen_len=8)))
        with pytest.raises(grpc.RpcError):
            stub.TextCompletion(pb.TextCompletionRequest(prompts=[secret], top_p=7))
    finally:
        for svc in (gw, model, tok):
            svc.stop()
    for svc in (gw, model, tok):
        log = svc.log()
        assert "INFO" in log, svc.name  # the services did log at INFO ...
        assert secret not in log and (len(generated) < 8 or generated not in log), svc.name  # ... but not these
