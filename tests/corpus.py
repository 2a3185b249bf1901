"""A deterministic multilingual corpus for the test tokenizer (English, digits, CJK, emoji, accents)."""

from __future__ import annotations

import random

WORDS = tuple(
    (
        "the a cat dog sat on mat quick brown fox jumps over lazy river mountain house tree bird sings "
        "song happy sad run walk talk said hello world time people year way day man thing woman life "
        "child work system program question number night point home water room mother area money story "
        "fact month lot right study book eye job word business issue side kind head service friend father "
        "power hour game line end member law car city community name team minute idea body back parent "
        "face level office door health person art war history party result change morning reason girl "
        "moment air teacher force education assistant user system helpful answer please thank you"
    ).split()
)
EXTRA = (
    "你好世界",
    "日本語のテキスト",
    "한국어",
    "😀 emoji 🎉",
    "café naïve résumé",
    "Ελληνικά",
    "привет мир",
    "e\u0301 combining",
    "[INST] tags [/INST]",
    "<<SYS>> sys <</SYS>>",
)


def sentences(n: int = 3000, seed: int = 0) -> list[str]:
    """n sentences of random words, some with non-Latin scripts and numbers."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16)))
        if i % 7 == 0:
            s += " " + rng.choice(EXTRA)
        if i % 5 == 0:
            s += f" {rng.randint(0, 99999)}."
        lines.append(s.capitalize())
    return lines
