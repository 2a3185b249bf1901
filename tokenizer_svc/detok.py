"""Incremental detokenization: the new, complete text as tokens arrive one step at a time.

This is a library, not an RPC of the tokenizer service. A stream needs it once per token per row,
and a round trip to another process for each token would sit on the latency path of every
stream; the decoder's state (two offsets) also belongs to the stream. The gateway therefore runs
it in-process, on a Tokenizer built from the exact model bytes the tokenizer service serves
(GetTokenizerModel), so the two can never disagree about the vocabulary.
"""

from __future__ import annotations

from tokenizer_svc.tokenizer import Tokenizer

_REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """Decode a growing token sequence into deltas whose concatenation is decode(all tokens).

    Each step decodes a short window: from the last emitted boundary (prefix_offset) to the end,
    minus the same window up to the last read token. Both start at the same token, so
    sentencepiece's stripping of a leading space affects them alike. Text that ends in U+FFFD is
    held back: it is a byte-fallback character whose remaining bytes are still to come.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self.prefix_offset = 0  # start of the window decoded for context
        self.read_offset = 0  # tokens before this have been emitted as text

    def step(self, new_tokens: list[int]) -> str:
        """Add tokens; return the text they complete (possibly empty)."""
        self.tokens.extend(new_tokens)
        decode = self.tokenizer.decode
        prefix_text = decode(self.tokens[self.prefix_offset : self.read_offset])
        text = decode(self.tokens[self.prefix_offset :])
        if len(text) > len(prefix_text) and not text.endswith(_REPLACEMENT):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.tokens)
            return text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """The text still held back (at the end of a stream, replacement characters included)."""
        prefix_text = self.tokenizer.decode(self.tokens[self.prefix_offset : self.read_offset])
        text = self.tokenizer.decode(self.tokens[self.prefix_offset :])
        self.prefix_offset = self.read_offset = len(self.tokens)
        return text[len(prefix_text) :]
