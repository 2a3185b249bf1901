"""The Llama-2 sentencepiece tokenizer: Meta's Tokenizer class, loadable from a file or bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from sentencepiece import SentencePieceProcessor


class TokenizerError(Exception):
    """A tokenizer model that cannot be loaded."""


class Tokenizer:
    """encode/decode with BOS and EOS as Llama-2 uses them."""

    def __init__(self, model_proto: bytes) -> None:
        self.sp_model = SentencePieceProcessor()
        try:
            self.sp_model.LoadFromSerializedProto(model_proto)
        except (RuntimeError, OSError) as e:
            raise TokenizerError(f"not a sentencepiece model: {e}") from None
        self.model_proto = model_proto
        self.sha256 = hashlib.sha256(model_proto).hexdigest()
        self.n_words: int = self.sp_model.vocab_size()
        self.bos_id: int = self.sp_model.bos_id()
        self.eos_id: int = self.sp_model.eos_id()
        self.pad_id: int = self.sp_model.pad_id()

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        """Load a tokenizer.model file."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise TokenizerError(f"cannot read tokenizer model {path}: {e.strerror}") from None
        return cls(data)

    def encode(self, s: str, bos: bool, eos: bool) -> list[int]:
        """Token ids of s, with BOS before and EOS after when asked."""
        t: list[int] = self.sp_model.encode(s)
        if bos:
            t = [self.bos_id, *t]
        if eos:
            t = [*t, self.eos_id]
        return t

    def encode_batch(self, texts: Sequence[str], bos: bool, eos: bool) -> list[list[int]]:
        """encode for many texts in one call (sentencepiece spreads a batch over its threads)."""
        batch: list[list[int]] = self.sp_model.encode(list(texts))
        return [([self.bos_id] if bos else []) + t + ([self.eos_id] if eos else []) for t in batch]

    def decode(self, t: Sequence[int]) -> str:
        """The text of token ids; BOS and EOS decode to nothing."""
        return self.sp_model.decode(list(t))

    def pieces(self, t: Sequence[int]) -> list[str]:
        """Each token decoded on its own, as the seed's `tokens` field: [decode([x]) for x in t]."""
        return [self.sp_model.decode([x]) for x in t]
