"""Incremental detokenization: streamed text concatenates to Decode and never splits a character."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenizer_svc.detok import IncrementalDecoder
from tokenizer_svc.tokenizer import Tokenizer

REPLACEMENT = "\ufffd"

# Emoji (incl. ZWJ sequences and skin tones), CJK, combining marks, digits, whitespace runs, and
# anything else unicode has (surrogates excluded: they are not encodable text).
EMOJI = st.sampled_from(["😀", "🦙", "👩‍👩‍👧", "👍🏽", "🇫🇷", "🎉", "❤️", "🧠"])
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
RARE_CJK = st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF)
COMBINING = st.characters(min_codepoint=0x0300, max_codepoint=0x036F)
DIGITS = st.characters(min_codepoint=0x30, max_codepoint=0x39)
WHITESPACE = st.sampled_from([" ", "  ", "   ", "\n", "\t", "\n\n", " \u00a0 "])
ANY = st.characters(exclude_categories=("Cs",))
WORDS = st.sampled_from(["hello", "world", "the", "cat", " café", "naïve", "12345"])
TEXT = st.lists(st.one_of(EMOJI, CJK, RARE_CJK, COMBINING, DIGITS, WHITESPACE, ANY, WORDS), max_size=40).map("".join)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_path) -> Tokenizer:
    return Tokenizer.from_file(tokenizer_path)


def stream(tokenizer: Tokenizer, ids: list[int], chunks: list[int] | None = None) -> list[str]:
    """Feed ids one at a time (or in the given chunk sizes); return every emitted piece."""
    dec = IncrementalDecoder(tokenizer)
    pieces, i, sizes = [], 0, iter(chunks or [])
    while i < len(ids):
        n = max(1, next(sizes, 1))
        pieces.append(dec.step(ids[i : i + n]))
        i += n
    pieces.append(dec.flush())
    return pieces


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT, bos=st.booleans())
def test_streamed_text_concatenates_to_decode(tokenizer: Tokenizer, text: str, bos: bool) -> None:
    ids = tokenizer.encode(text, bos=bos, eos=False)
    pieces = stream(tokenizer, ids)
    assert "".join(pieces) == tokenizer.decode(ids)
    if REPLACEMENT not in text:
        assert not any(REPLACEMENT in p for p in pieces), pieces


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=TEXT, text=TEXT, chunks=st.lists(st.integers(1, 4), max_size=30))
def test_generation_after_a_prompt_in_uneven_steps(tokenizer: Tokenizer, prefix: str, text: str, chunks) -> None:
    """A generation is decoded on its own (as the seed decodes it), arriving in steps of 1-4 tokens."""
    gen = tokenizer.encode(prefix + text, bos=False, eos=False)[len(tokenizer.encode(prefix, False, False)) :]
    pieces = stream(tokenizer, gen, chunks)
    assert "".join(pieces) == tokenizer.decode(gen)
    if REPLACEMENT not in prefix + text:
        assert not any(REPLACEMENT in p for p in pieces)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.integers(0, 999), max_size=40))
def test_any_token_sequence_concatenates_to_decode(tokenizer: Tokenizer, ids: list[int]) -> None:
    """Random ids, byte-fallback tokens that form no valid UTF-8 included."""
    pieces = stream(tokenizer, ids)
    full = tokenizer.decode(ids)
    assert "".join(pieces) == full
    if REPLACEMENT not in full:
        assert not any(REPLACEMENT in p for p in pieces)


def test_multibyte_character_split_over_byte_tokens_is_held_back(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("🦙", bos=False, eos=False)
    assert len(ids) >= 4, "the test tokenizer has no piece for the llama emoji: byte fallback expected"
    dec = IncrementalDecoder(tokenizer)
    assert [dec.step([t]) for t in ids] == [""] * (len(ids) - 1) + ["🦙"]
    assert dec.flush() == ""


def test_leading_space_marker(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("hello world the cat", bos=False, eos=False)
    pieces = stream(tokenizer, ids)
    assert pieces[0] == "hello" and "".join(pieces) == "hello world the cat"
