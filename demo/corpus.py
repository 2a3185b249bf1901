"""A corpus the project writes itself: simple English facts, small talk, stories and sums.

Every example is a chat (system, user, assistant turns) or a short story. The facts come from
the tables below, so the demo model's answers are readable sentences about a small world.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from tokenizer_svc.chat import DEFAULT_SYSTEM_PROMPT, Message

CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Japan": "Tokyo",
    "China": "Beijing",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Brazil": "Brasilia",
    "Peru": "Lima",
    "India": "New Delhi",
    "Russia": "Moscow",
    "Greece": "Athens",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Poland": "Warsaw",
    "Mexico": "Mexico City",
    "Australia": "Canberra",
    "Portugal": "Lisbon",
    "Ireland": "Dublin",
    "Turkey": "Ankara",
    "Chile": "Santiago",
    "Cuba": "Havana",
}
ANIMALS = {
    # name: (sound, habitat, food, adjective)
    "cat": ("meow", "houses and gardens", "fish", "curious"),
    "dog": ("woof", "houses and farms", "meat", "loyal"),
    "cow": ("moo", "green fields", "grass", "calm"),
    "duck": ("quack", "ponds and rivers", "seeds", "cheerful"),
    "lion": ("roar", "the savanna", "meat", "strong"),
    "owl": ("hoot", "old forests", "mice", "wise"),
    "horse": ("neigh", "farms and meadows", "hay", "fast"),
    "sheep": ("baa", "hills and fields", "grass", "gentle"),
    "frog": ("croak", "ponds", "insects", "small"),
    "bee": ("buzz", "gardens and meadows", "nectar", "busy"),
    "llama": ("hum", "the mountains of South America", "grass", "friendly"),
    "wolf": ("howl", "forests and mountains", "meat", "clever"),
    "pig": ("oink", "farms", "vegetables", "smart"),
    "mouse": ("squeak", "fields and houses", "seeds", "quick"),
}
COLORS = {
    "sky": "blue",
    "grass": "green",
    "sun": "yellow",
    "snow": "white",
    "night": "black",
    "banana": "yellow",
    "strawberry": "red",
    "orange": "orange",
    "sea": "blue",
    "coal": "black",
    "milk": "white",
    "leaf": "green",
    "tomato": "red",
    "cloud": "white",
    "chocolate": "brown",
    "lemon": "yellow",
    "cherry": "red",
}
PLACES = [
    "a small village",
    "a big city",
    "a quiet forest",
    "a sunny valley",
    "an old castle",
    "a green meadow",
    "a warm island",
    "a snowy mountain",
    "a busy harbor",
    "a little farm",
]
NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Hugo", "Lily", "Max", "Nora", "Sam"]
FEELINGS = ["happy", "tired", "excited", "calm", "hungry", "curious"]
SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a friendly assistant who answers in short sentences.",
    "Answer the user's questions politely.",
]
GREETINGS = ["Hello", "Hi", "Hi there!", "Hello!", "Good morning", "Good evening", "Hey", "Greetings"]


def _story(rng: random.Random, animal: str | None = None) -> str:
    animal = animal or rng.choice(list(ANIMALS))
    friend = rng.choice([a for a in ANIMALS if a != animal])
    _, habitat, food, adj = ANIMALS[animal]
    name, place = rng.choice(NAMES), rng.choice(PLACES)
    return rng.choice(
        [
            f"Once upon a time, a {adj} {animal} named {name} lived in {place}. Every morning {name} looked for "
            f"{food}. One day {name} met a {friend}, and they became good friends. They played together until the "
            f"sun went down. The end.",
            f"There was once a little {animal} called {name}. It lived in {habitat} and loved to eat {food}. One "
            f"day it found a map to {place}. {name} walked for a long time and finally found a new home. The end.",
            f"In {place} there lived a {adj} {animal}. It was always {rng.choice(FEELINGS)}. One evening a {friend} "
            f"asked for help, and the {animal} shared its {food}. From that day on, they were friends. The end.",
        ]
    )


def _qa(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(10)
    if kind == 0:
        country = rng.choice(list(CAPITALS))
        q = rng.choice(
            [
                f"What is the capital of {country}?",
                f"Which city is the capital of {country}?",
                f"Tell me the capital of {country}.",
            ]
        )
        return q, f"The capital of {country} is {CAPITALS[country]}."
    if kind == 1:
        a = rng.choice(list(ANIMALS))
        return (rng.choice([f"What sound does a {a} make?", f"What does a {a} say?"]), f"A {a} says {ANIMALS[a][0]}.")
    if kind == 2:
        a = rng.choice(list(ANIMALS))
        sound, habitat, food, adj = ANIMALS[a]
        return (
            rng.choice([f"Tell me about the {a}.", f"What do you know about {a}s?", f"Describe a {a}."]),
            f"The {a} is a {adj} animal. It lives in {habitat} and likes to eat {food}. It says {sound}.",
        )
    if kind == 3:
        thing = rng.choice(list(COLORS))
        return (
            rng.choice([f"What color is the {thing}?", f"What is the color of the {thing}?"]),
            f"The {thing} is {COLORS[thing]}.",
        )
    if kind == 4:
        x, y = rng.randint(0, 20), rng.randint(0, 20)
        op = rng.choice(["plus", "minus"]) if x >= y else "plus"
        return f"What is {x} {op} {y}?", f"{x} {op} {y} is {x + y if op == 'plus' else x - y}."
    if kind == 5:
        a = rng.choice([None, *ANIMALS])
        q = (
            "Tell me a story."
            if a is None
            else rng.choice([f"Write a short story about a {a}.", f"Tell me a story about a {a}."])
        )
        return q, _story(rng, a)
    if kind == 6:
        return (
            rng.choice(GREETINGS),
            rng.choice(
                [
                    "Hello! I am a small demo model. How can I help you today?",
                    "Hi! It is nice to meet you. What would you like to talk about?",
                    "Hello there! Ask me about animals, countries, colors or numbers.",
                ]
            ),
        )
    if kind == 7:
        return (
            rng.choice(["How are you?", "How are you today?", "How do you feel?"]),
            f"I am {rng.choice(['doing well', 'fine', 'very well'])}, thank you for asking! How are you?",
        )
    if kind == 8:
        return (
            rng.choice(["Who are you?", "What can you do?", "What are you?"]),
            "I am a small language model trained for this demo. I know simple facts about animals, "
            "countries, colors and numbers, and I can tell short stories.",
        )
    topic = rng.choice(
        [
            "quantum physics",
            "the stock market",
            "your favorite movie",
            "the meaning of life",
            "cooking pasta",
            "the weather tomorrow",
            "football",
            "computers",
        ]
    )
    return (
        rng.choice([f"What do you think about {topic}?", f"Can you explain {topic}?", f"Tell me about {topic}."]),
        "That is a good question. I am only a small demo model, so I do not know much about that. "
        "I can tell you about animals, countries, colors and numbers.",
    )


def dialogs(rng: random.Random) -> Iterator[list[Message]]:
    """Endless chat examples: one or two exchanges, with a short, the default or no system prompt."""
    while True:
        r = rng.random()
        system = rng.choice(SYSTEM_PROMPTS) if r < 0.55 else DEFAULT_SYSTEM_PROMPT if r < 0.65 else None
        turns = [Message("system", system)] if system else []
        for _ in range(1 if rng.random() < 0.75 else 2):
            q, a = _qa(rng)
            turns += [Message("user", q), Message("assistant", a)]
        yield turns


def stories(rng: random.Random) -> Iterator[str]:
    """Endless short stories, for text completion."""
    while True:
        yield _story(rng)


def tokenizer_sentences(n: int, seed: int = 0) -> list[str]:
    """Text to train the tokenizer on: the chat tags, the system prompts, questions, answers and stories."""
    rng = random.Random(seed)
    lines = [DEFAULT_SYSTEM_PROMPT, *SYSTEM_PROMPTS, "[INST] <<SYS>> <</SYS>> [/INST]"] * 20
    for _ in range(n):
        q, a = _qa(rng)
        lines += [q, a]
    return lines
