"""One completion row on the gateway: model tokens in, text out, with stop strings cut.

Unary and streaming calls both run every row through RowText, so a stream's texts concatenate to
exactly the unary generation: decode(tokens) as the seed returns it, cut before the first stop
string. Text that could still turn into a stop string is held back until it cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tokenizer_svc.detok import IncrementalDecoder
from tokenizer_svc.tokenizer import Tokenizer


@dataclass
class Delta:
    """What one model event adds to a row: new text, new tokens (decoded alone), their logprobs."""

    text: str = ""
    pieces: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    stopped: bool = False  # a stop string was found: the row is finished


class RowText:
    """Turns a row's token events into text deltas, watching for stop strings in generated text."""

    def __init__(self, tokenizer: Tokenizer, stops: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.decoder = IncrementalDecoder(tokenizer)
        self.stops = [s for s in stops if s]
        self.longest_stop = max((len(s) for s in self.stops), default=0)
        self.text = ""  # everything decoded so far
        self.sent = 0  # characters of text already handed out
        self.gen_start = 0  # stop strings are looked for from here: after an echoed prompt
        self.tokens: list[int] = []
        self.logprobs: list[float] = []
        self.stopped = False

    def add(self, tokens: Sequence[int], logprobs: Sequence[float], echo: bool = False) -> Delta:
        """Take one model event's tokens; echo marks the prompt of an echo request."""
        self.tokens += tokens
        self.logprobs += logprobs
        self.text += self.decoder.step(list(tokens))
        if echo:
            self.gen_start = len(self.text)
        return self._delta(tokens, logprobs, final=False)

    def finish(self) -> Delta:
        """The row ended (EOS or length): release what was held back."""
        self.text += self.decoder.flush()
        return self._delta([], [], final=True)

    def _delta(self, tokens: Sequence[int], logprobs: Sequence[float], final: bool) -> Delta:
        pieces = self.tokenizer.pieces(tokens) if logprobs else []
        if self.stopped:
            return Delta(pieces=pieces, logprobs=list(logprobs), stopped=True)
        end = len(self.text)
        hit = self._find_stop()
        if hit is not None:
            end, self.stopped = hit, True
        elif not final:
            end -= self._held_back()
        out = self.text[self.sent : end]
        self.sent = max(self.sent, end)
        return Delta(out, pieces, list(logprobs), self.stopped)

    def _find_stop(self) -> int | None:
        # Text is only sent once no end of it can begin a stop string, so a stop starts at or after sent.
        start = max(self.gen_start, self.sent)
        found = [i for s in self.stops if (i := self.text.find(s, start)) >= 0]
        return min(found) if found else None

    def _held_back(self) -> int:
        """Length of the longest end of the generated text that begins some stop string."""
        tail = self.text[max(self.gen_start, len(self.text) - self.longest_stop) :]
        for k in range(min(len(tail), self.longest_stop - 1), 0, -1):
            if any(s.startswith(tail[-k:]) for s in self.stops):
                return k
        return 0
