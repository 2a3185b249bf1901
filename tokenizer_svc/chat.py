"""The Llama-2 chat format: dialogs checked, rendered and encoded exactly as Meta's chat_completion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llama_grpc.errors import InvalidArgument
from tokenizer_svc.tokenizer import Tokenizer

B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
# Content may not contain the format's own tags (Meta's later fix against prompt injection).
RESERVED_TAGS = ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")
ROLES = ("system", "user", "assistant")

DEFAULT_SYSTEM_PROMPT = """\
You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe. \
Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal content. \
Please ensure that your responses are socially unbiased and positive in nature.

If a question does not make any sense, or is not factually coherent, explain why instead of answering something \
not correct. If you don't know the answer to a question, please don't share false information."""


class DialogError(InvalidArgument):
    """A dialog that breaks a rule of the chat format."""


@dataclass(frozen=True)
class Message:
    """One chat turn; role is 'system', 'user' or 'assistant' (anything else is rejected)."""

    role: str
    content: str


def check_dialog(i: int, dialog: Sequence[Message]) -> None:
    """Raise DialogError naming dialogs[i] and the rule it breaks."""
    where = f"dialogs[{i}]"
    if not dialog:
        raise DialogError(f"{where}: a dialog needs at least one message")
    for j, msg in enumerate(dialog):
        if msg.role not in ROLES:
            raise DialogError(f"{where}.messages[{j}].role: {msg.role} is not a role; use system, user or assistant")
        for tag in RESERVED_TAGS:
            if tag in msg.content:
                raise DialogError(
                    f"{where}.messages[{j}].content contains {tag}: the tags {', '.join(RESERVED_TAGS)} "
                    "belong to the chat format and may not appear in messages"
                )
    turns = dialog[1:] if dialog[0].role == "system" else dialog
    for k, msg in enumerate(turns):
        j = k + len(dialog) - len(turns)
        if msg.role == "system":
            raise DialogError(f"{where}.messages[{j}]: a system message may only be the first message")
        expected = "user" if k % 2 == 0 else "assistant"
        if msg.role != expected:
            raise DialogError(
                f"{where}.messages[{j}]: expected role {expected}, got {msg.role}; after the optional "
                "system message, roles alternate user, assistant, user, ..."
            )
    if dialog[-1].role != "user":
        raise DialogError(f"{where}: the last message must be from the user, got {dialog[-1].role}")


def render_dialog(dialog: Sequence[Message], system_prompt: str | None) -> list[tuple[str, bool]]:
    """The texts to encode with BOS (and with EOS where the bool is True), as Meta's chat_completion.

    A dialog without a system message gets system_prompt (None: no system message at all).
    The system message folds into the first user turn between <<SYS>> tags; each completed
    (user, assistant) pair is one sequence ending with EOS; the last user turn ends the prompt.
    """
    msgs = list(dialog)
    if msgs[0].role != "system" and system_prompt is not None:
        msgs = [Message("system", system_prompt), *msgs]
    if msgs[0].role == "system":
        msgs = [Message(msgs[1].role, B_SYS + msgs[0].content + E_SYS + msgs[1].content), *msgs[2:]]
    parts = [
        (f"{B_INST} {prompt.content.strip()} {E_INST} {answer.content.strip()} ", True)
        for prompt, answer in zip(msgs[::2], msgs[1::2], strict=False)
    ]
    if len(msgs) % 2:  # a prompt ends with the user's turn; a finished conversation (training) does not
        parts.append((f"{B_INST} {msgs[-1].content.strip()} {E_INST}", False))
    return parts


def encode_dialog(tokenizer: Tokenizer, dialog: Sequence[Message], system_prompt: str | None) -> list[int]:
    """Prompt token ids for a checked dialog."""
    tokens: list[int] = []
    for text, eos in render_dialog(dialog, system_prompt):
        tokens += tokenizer.encode(text, bos=True, eos=eos)
    return tokens
