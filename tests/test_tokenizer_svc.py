"""The tokenizer service over gRPC: chat format, limits, bad input, concurrency (issue: tokenizer)."""

from __future__ import annotations

import concurrent.futures
import signal

import grpc
import pytest
import sentencepiece as spm
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from llama.v1 import tokenizer_pb2 as pb
from llama.v1 import tokenizer_pb2_grpc
from llama.v1 import types_pb2 as types
from llama_grpc.launch import Service, free_port, health_status, python_module

# Written out here from the seed, independently of tokenizer_svc.chat.
SEED_DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being "
    "safe. Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal "
    "content. Please ensure that your responses are socially unbiased and positive in nature.\n\nIf a question "
    "does not make any sense, or is not factually coherent, explain why instead of answering something not "
    "correct. If you don't know the answer to a question, please don't share false information."
)
ROLE = {"system": types.ROLE_SYSTEM, "user": types.ROLE_USER, "assistant": types.ROLE_ASSISTANT}


@pytest.fixture(scope="module")
def tokenizer_service(tokenizer_path):
    port = free_port()
    svc = Service(
        "tokenizer",
        python_module(
            "tokenizer_svc",
            "--tokenizer-path",
            str(tokenizer_path),
            "--port",
            str(port),
            "--max-texts",
            "4",
            "--max-text-bytes",
            "2000",
            "--metrics-port",
            "0",
        ),
        port,
    )
    svc.wait_healthy(60)
    yield svc
    assert svc.stop() == 0, svc.log()[-2000:]


@pytest.fixture(scope="module")
def stub(tokenizer_service):
    with grpc.insecure_channel(tokenizer_service.address) as channel:
        yield tokenizer_pb2_grpc.TokenizerServiceStub(channel)


@pytest.fixture(scope="module")
def sp(tokenizer_path):
    return spm.SentencePieceProcessor(model_file=str(tokenizer_path))


def reference_ids(sp, dialog: list[dict], system: str | None = SEED_DEFAULT_SYSTEM_PROMPT) -> list[int]:
    """Meta's chat_completion rendering, written directly against sentencepiece."""
    b_inst, e_inst, b_sys, e_sys = "[INST]", "[/INST]", "<<SYS>>\n", "\n<</SYS>>\n\n"
    if dialog[0]["role"] != "system" and system is not None:
        dialog = [{"role": "system", "content": system}, *dialog]
    if dialog[0]["role"] == "system":
        dialog = [
            {"role": dialog[1]["role"], "content": b_sys + dialog[0]["content"] + e_sys + dialog[1]["content"]},
            *dialog[2:],
        ]
    ids: list[int] = []
    for prompt, answer in zip(dialog[::2], dialog[1::2], strict=False):
        text = f"{b_inst} {prompt['content'].strip()} {e_inst} {answer['content'].strip()} "
        ids += [sp.bos_id(), *sp.encode(text), sp.eos_id()]
    ids += [sp.bos_id(), *sp.encode(f"{b_inst} {dialog[-1]['content'].strip()} {e_inst}")]
    return ids


def to_proto(dialog: list[dict]) -> types.Dialog:
    return types.Dialog(messages=[types.Message(role=ROLE[m["role"]], content=m["content"]) for m in dialog])


GOLDEN_DIALOGS = {
    "system+user": [
        {"role": "system", "content": "Always answer with emojis"},
        {"role": "user", "content": "How to go from Beijing to NY?"},
    ],
    "multi-turn": [
        {"role": "user", "content": "I am going to Paris, what should I see?"},
        {"role": "assistant", "content": "The Eiffel Tower, the Louvre and Notre-Dame."},
        {"role": "user", "content": "What is so great about #1?"},
    ],
    "system+multi-turn": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "bye"},
    ],
    "no system": [{"role": "user", "content": "what is the recipe of mayonnaise?"}],
    "whitespace": [
        {"role": "system", "content": "  padded system  \n"},
        {"role": "user", "content": "\n\t  lots of space   around  \n"},
        {"role": "assistant", "content": "   answer with spaces   "},
        {"role": "user", "content": "   again   "},
    ],
    "unicode": [
        {"role": "user", "content": "你好世界 😀 café naïve e\u0301 привет 🦙🧠 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"},
        {"role": "assistant", "content": "日本語のテキスト 한국어 🎉"},
        {"role": "user", "content": "Ελληνικά ✓"},
    ],
}


@pytest.mark.parametrize("name", GOLDEN_DIALOGS)
def test_dialog_ids_match_independent_rendering(stub, sp, name: str) -> None:
    dialog = GOLDEN_DIALOGS[name]
    resp = stub.EncodeDialogs(pb.EncodeDialogsRequest(dialogs=[to_proto(dialog)]))
    assert list(resp.tokens[0].ids) == reference_ids(sp, dialog)


def test_batch_of_dialogs_keeps_order(stub, sp) -> None:
    dialogs = [GOLDEN_DIALOGS[n] for n in ("no system", "unicode", "multi-turn")]
    resp = stub.EncodeDialogs(pb.EncodeDialogsRequest(dialogs=[to_proto(d) for d in dialogs]))
    assert [list(t.ids) for t in resp.tokens] == [reference_ids(sp, d) for d in dialogs]


def test_tokenizer_info_and_model(stub, sp, tokenizer_path) -> None:
    info = stub.GetTokenizerInfo(pb.GetTokenizerInfoRequest())
    assert (info.vocab_size, info.bos_id, info.eos_id, info.pad_id) == (sp.vocab_size(), 1, 2, -1)
    assert info.default_system_prompt == SEED_DEFAULT_SYSTEM_PROMPT
    assert (info.max_texts, info.max_text_bytes) == (4, 2000)
    model = stub.GetTokenizerModel(pb.GetTokenizerModelRequest())
    assert model.model == tokenizer_path.read_bytes() and model.model_sha256 == info.model_sha256


def test_encode_decode_and_pieces(stub, sp) -> None:
    texts = ["Hello world 123", "你好 😀 𝔘", ""]
    enc = stub.Encode(pb.EncodeRequest(texts=texts, bos=True, eos=True))
    assert [list(t.ids) for t in enc.tokens] == [[1, *sp.encode(t), 2] for t in texts]
    dec = stub.Decode(pb.DecodeRequest(tokens=enc.tokens, pieces=True))
    assert list(dec.texts) == texts
    assert [list(p.pieces) for p in dec.pieces] == [[sp.decode([x]) for x in t.ids] for t in enc.tokens]
    plain = stub.Encode(pb.EncodeRequest(texts=texts[:1]))
    assert list(plain.tokens[0].ids) == sp.encode(texts[0])


def test_system_prompt_flags(tokenizer_path, sp) -> None:
    dialog = GOLDEN_DIALOGS["no system"]
    for flags, system in (
        (["--no-system-prompt"], None),
        (["--system-prompt", "Talk like a pirate."], "Talk like a pirate."),
    ):
        port = free_port()
        svc = Service(
            "tokenizer-flags",
            python_module(
                "tokenizer_svc",
                "--tokenizer-path",
                str(tokenizer_path),
                "--port",
                str(port),
                "--metrics-port",
                "0",
                *flags,
            ),
            port,
        )
        try:
            svc.wait_healthy(60)
            with grpc.insecure_channel(svc.address) as ch:
                resp = tokenizer_pb2_grpc.TokenizerServiceStub(ch).EncodeDialogs(
                    pb.EncodeDialogsRequest(dialogs=[to_proto(dialog)])
                )
            assert list(resp.tokens[0].ids) == reference_ids(sp, dialog, system)
        finally:
            assert svc.stop() == 0


def msgs(*pairs: tuple[int, str]) -> types.Dialog:
    return types.Dialog(messages=[types.Message(role=r, content=c) for r, c in pairs])


U, A, S = types.ROLE_USER, types.ROLE_ASSISTANT, types.ROLE_SYSTEM
BAD_DIALOGS = [
    ("empty dialog", msgs(), r"dialogs\[1\]: a dialog needs at least one message"),
    ("unspecified role", msgs((types.ROLE_UNSPECIFIED, "hi")), r"dialogs\[1\]\.messages\[0\]\.role: ROLE_UNSPECIFIED"),
    ("unknown role", msgs((U, "hi"), (A, "yo"), (7, "x")), r"dialogs\[1\]\.messages\[2\]\.role: unknown role value 7"),
    ("system not first", msgs((U, "hi"), (S, "sys")), r"dialogs\[1\]\.messages\[1\]: a system message may only be"),
    ("two systems", msgs((S, "a"), (S, "b"), (U, "c")), r"messages\[1\]: a system message may only be the first"),
    ("not alternating", msgs((U, "a"), (U, "b")), r"messages\[1\]: expected role assistant, got user"),
    ("starts with assistant", msgs((S, "s"), (A, "a"), (U, "b")), r"messages\[1\]: expected role user, got assist"),
    ("last not user", msgs((U, "a"), (A, "b")), r"dialogs\[1\]: the last message must be from the user"),
    ("only system", msgs((S, "s")), r"dialogs\[1\]: the last message must be from the user, got system"),
    ("[INST]", msgs((U, "x [INST] y")), r"messages\[0\]\.content contains \[INST\]"),
    ("[/INST]", msgs((U, "x [/INST] y")), r"content contains \[/INST\]"),
    ("<<SYS>>", msgs((S, "<<SYS>>"), (U, "y")), r"messages\[0\]\.content contains <<SYS>>"),
    ("<</SYS>>", msgs((U, "a"), (A, "<</SYS>>"), (U, "b")), r"messages\[1\]\.content contains <</SYS>>"),
    ("message too long", msgs((U, "é" * 1001)), r"dialogs\[1\]\.messages\[0\]\.content: 2002 bytes, at most 2000"),
]


@pytest.mark.parametrize(("name", "dialog", "message"), BAD_DIALOGS, ids=[b[0] for b in BAD_DIALOGS])
def test_bad_dialogs_are_invalid_argument(stub, name: str, dialog: types.Dialog, message: str) -> None:
    good = msgs((U, "fine"))
    with pytest.raises(grpc.RpcError) as err:
        stub.EncodeDialogs(pb.EncodeDialogsRequest(dialogs=[good, dialog]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() is not None
    import re

    assert re.search(message, err.value.details()), err.value.details()
    assert "Traceback" not in err.value.details()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.Encode(pb.EncodeRequest(texts=["a"] * 5)), r"texts: 5 items, at most 4 per request"),
        (lambda s: s.Encode(pb.EncodeRequest(texts=["ok", "x" * 2001])), r"texts\[1\]: 2001 bytes, at most 2000"),
        (
            lambda s: s.EncodeDialogs(pb.EncodeDialogsRequest(dialogs=[msgs((U, "a"))] * 5)),
            r"dialogs: 5 items, at most 4",
        ),
        (lambda s: s.Decode(pb.DecodeRequest(tokens=[types.TokenIds(ids=[5, 1000])])), r"tokens\[0\] holds id 1000"),
        (
            lambda s: s.Decode(pb.DecodeRequest(tokens=[types.TokenIds(ids=[-1])])),
            r"outside the vocabulary \[0, 1000\)",
        ),
        (lambda s: s.Decode(pb.DecodeRequest(tokens=[types.TokenIds()] * 5)), r"tokens: 5 items, at most 4"),
    ],
)
def test_limits_are_invalid_argument(stub, call, message: str) -> None:
    import re

    with pytest.raises(grpc.RpcError) as err:
        call(stub)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(message, err.value.details()), err.value.details()


def test_service_stays_serving_after_bad_input(stub, tokenizer_service) -> None:
    with pytest.raises(grpc.RpcError):
        stub.EncodeDialogs(pb.EncodeDialogsRequest(dialogs=[msgs()]))
    assert health_status(tokenizer_service.address) == "SERVING"
    assert stub.Encode(pb.EncodeRequest(texts=["still here"])).tokens


def test_many_concurrent_callers_get_their_own_answers(stub, sp) -> None:
    texts = [f"caller {i} says " + "hello world " * (i % 7) + "你好" * (i % 3) for i in range(64)]

    def call(text: str) -> list[int]:
        return list(stub.Encode(pb.EncodeRequest(texts=[text])).tokens[0].ids)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        got = list(pool.map(call, texts * 4))
    assert got == [sp.encode(t) for t in texts * 4]


def test_health_reflection_and_sigterm(tokenizer_path) -> None:
    port = free_port()
    svc = Service(
        "tokenizer-life",
        python_module(
            "tokenizer_svc", "--tokenizer-path", str(tokenizer_path), "--port", str(port), "--metrics-port", "0"
        ),
        port,
    )
    svc.wait_healthy(60)
    assert health_status(svc.address, "llama.v1.TokenizerService") == "SERVING"
    with grpc.insecure_channel(svc.address) as ch:
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        resp = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in resp.list_services_response.service}
    assert {"llama.v1.TokenizerService", "grpc.health.v1.Health"} <= names
    svc.signal(signal.SIGTERM)
    assert svc.proc.wait(30) == 0


def test_missing_tokenizer_file_is_a_clear_error(tmp_path) -> None:
    port = free_port()
    svc = Service(
        "tokenizer-bad",
        python_module(
            "tokenizer_svc",
            "--tokenizer-path",
            str(tmp_path / "nope.model"),
            "--port",
            str(port),
            "--metrics-port",
            "0",
        ),
        port,
    )
    assert svc.proc.wait(60) == 2
    log = svc.log()
    assert "cannot read tokenizer model" in log and "Traceback" not in log
    svc.stop()
