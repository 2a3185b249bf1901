"""The tokenizer service's core: limits checked, then encode, decode and chat rendering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llama_grpc.errors import InvalidArgument
from tokenizer_svc.chat import Message, check_dialog, encode_dialog
from tokenizer_svc.tokenizer import Tokenizer


@dataclass(frozen=True)
class Limits:
    """What one request may hold."""

    max_texts: int = 64  # texts, token sequences or dialogs per request
    max_text_bytes: int = 256 * 1024  # UTF-8 bytes per text or message
    max_tokens: int = 64 * 1024  # ids per sequence to decode


class TokenizerCore:
    """Encode texts and dialogs, decode ids; every limit and rule raises InvalidArgument."""

    def __init__(self, tokenizer: Tokenizer, limits: Limits, system_prompt: str | None) -> None:
        self.tokenizer = tokenizer
        self.limits = limits
        self.system_prompt = system_prompt  # None: dialogs without one get no system message

    def _check_count(self, field: str, n: int) -> None:
        if n > self.limits.max_texts:
            raise InvalidArgument(f"{field}: {n} items, at most {self.limits.max_texts} per request (--max-texts)")

    def _check_text(self, field: str, text: str) -> None:
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > self.limits.max_text_bytes:
            raise InvalidArgument(f"{field}: {size} bytes, at most {self.limits.max_text_bytes} (--max-text-bytes)")

    def encode(self, texts: Sequence[str], bos: bool, eos: bool) -> list[list[int]]:
        """Token ids of each text."""
        self._check_count("texts", len(texts))
        for i, text in enumerate(texts):
            self._check_text(f"texts[{i}]", text)
        return self.tokenizer.encode_batch(texts, bos, eos)

    def _check_ids(self, seqs: Sequence[Sequence[int]]) -> None:
        self._check_count("tokens", len(seqs))
        n = self.tokenizer.n_words
        for i, seq in enumerate(seqs):
            if len(seq) > self.limits.max_tokens:
                raise InvalidArgument(f"tokens[{i}]: {len(seq)} ids, at most {self.limits.max_tokens}")
            bad = next((t for t in seq if not 0 <= t < n), None)
            if bad is not None:
                raise InvalidArgument(f"tokens[{i}] holds id {bad}, outside the vocabulary [0, {n})")

    def decode(self, seqs: Sequence[Sequence[int]]) -> list[str]:
        """The text of each id sequence."""
        self._check_ids(seqs)
        return [self.tokenizer.decode(s) for s in seqs]

    def pieces(self, seqs: Sequence[Sequence[int]]) -> list[list[str]]:
        """Each id decoded on its own, per sequence."""
        self._check_ids(seqs)
        return [self.tokenizer.pieces(s) for s in seqs]

    def encode_dialogs(self, dialogs: Sequence[Sequence[Message]]) -> list[list[int]]:
        """Prompt ids of each dialog in the Llama-2 chat format; every dialog is checked first."""
        self._check_count("dialogs", len(dialogs))
        for i, dialog in enumerate(dialogs):
            check_dialog(i, dialog)
            for j, msg in enumerate(dialog):
                self._check_text(f"dialogs[{i}].messages[{j}].content", msg.content)
        return [encode_dialog(self.tokenizer, d, self.system_prompt) for d in dialogs]
