"""Synthetic routing data for tests: the strong model wins on hard prompts only."""

from __future__ import annotations

import random

from router import data


def synthetic_examples(count: int, seed: int = 1) -> list[data.Example]:
    """Strong wins on hard prompts (proofs, code, multi-step maths); both do well on easy ones."""
    rng = random.Random(seed)
    easy = ["what is the capital of {}", "say hello to {}", "translate the word {} to french", "name a colour like {}"]
    hard = ["prove that the sum of {} odd numbers is a square", "write a python function that parses {} and returns a tree",
            "solve the integral of x^{} times log x step by step", "derive the complexity of merging {} sorted lists"]
    examples = []
    for _ in range(count):
        is_hard = rng.random() < 0.4
        text = rng.choice(hard if is_hard else easy).format(rng.choice(["paris", "seven", "json", "blue", "42", "k"]))
        weak = 1.0 if rng.random() < (0.3 if is_hard else 0.9) else 0.0
        strong = 1.0 if rng.random() < (0.9 if is_hard else 0.95) else 0.0
        examples.append(data.Example(text, weak, strong))
    return examples
