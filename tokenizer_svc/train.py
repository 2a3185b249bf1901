"""Train a sentencepiece model with the trainer options of Llama-2's tokenizer."""

from __future__ import annotations

import io
from collections.abc import Iterable

import sentencepiece as spm

# The trainer_spec of Meta's Llama-2 tokenizer.model, less its corpus-size settings.
LLAMA2_TRAINER_OPTIONS: dict[str, object] = {
    "model_type": "bpe",
    "character_coverage": 0.99995,
    "split_digits": True,
    "split_by_unicode_script": True,
    "split_by_whitespace": True,
    "split_by_number": True,
    "byte_fallback": True,
    "allow_whitespace_only_pieces": True,
    "max_sentencepiece_length": 16,
    "unk_id": 0,
    "bos_id": 1,
    "eos_id": 2,
    "pad_id": -1,
    "normalization_rule_name": "identity",
    "add_dummy_prefix": True,
    "remove_extra_whitespaces": False,
    "vocabulary_output_piece_score": True,
    "hard_vocab_limit": True,
}


def train_tokenizer(sentences: Iterable[str], vocab_size: int, num_threads: int = 2) -> bytes:
    """Train a Llama-2-style BPE model on sentences; return the serialized model."""
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=out,
        vocab_size=vocab_size,
        num_threads=num_threads,
        minloglevel=2,
        **LLAMA2_TRAINER_OPTIONS,
    )
    return out.getvalue()
