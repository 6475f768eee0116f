"""Features of a prompt for the router: hashed word n-grams plus cheap structural signals.

Pure and fast (the request path scores every ``auto`` request). Hashing uses CRC32, which is
the same in every process and release (Python's ``hash`` is salted per process), so a saved
router scores the same everywhere.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
_CODE = re.compile(r"```|\bdef |\bclass |\breturn\b|;\s*$|\{\s*$|#include|\bSELECT\b|=>|\bfunction\b", re.M | re.I)
_MATH = re.compile(r"\d+\s*[-+*/^=<>]\s*\d+|\\frac|\\sum|\\int|\bsolve\b|\bequation|\bprove\b|\bintegral|\bderivative", re.I)
_CONSTRAINT = re.compile(r"\b(must|exactly|at least|at most|no more than|do not|don't|only|without|step by step|format)\b", re.I)

STRUCTURAL = ("log_chars", "log_words", "questions", "constraints", "code", "math", "digits", "non_ascii", "lines")


@dataclass(frozen=True)
class FeatureSettings:
    buckets: int = 1 << 18  # hashed n-gram space
    ngram_max: int = 2

    @property
    def size(self) -> int:
        return self.buckets + len(STRUCTURAL)


def structural(text: str) -> list[float]:
    words = len(text.split())
    chars = max(len(text), 1)
    return [
        math.log1p(len(text)) / 10,
        math.log1p(words) / 8,
        min(text.count("?"), 10) / 5,
        min(len(_CONSTRAINT.findall(text)), 10) / 5,
        1.0 if _CODE.search(text) else 0.0,
        1.0 if _MATH.search(text) else 0.0,
        sum(c.isdigit() for c in text) / chars * 5,
        sum(ord(c) > 127 for c in text) / chars,
        min(text.count("\n"), 50) / 25,
    ]


def hashed_ngrams(text: str, settings: FeatureSettings) -> dict[int, float]:
    """Counts of word 1..n-grams, hashed into buckets, L2-normalized."""
    tokens = _WORD.findall(text.lower())
    counts: dict[int, float] = {}
    for n in range(1, settings.ngram_max + 1):
        for start in range(len(tokens) - n + 1):
            gram = " ".join(tokens[start : start + n]).encode()
            index = zlib.crc32(gram) % settings.buckets
            counts[index] = counts.get(index, 0.0) + 1.0
    norm = math.sqrt(sum(v * v for v in counts.values())) or 1.0
    return {index: value / norm for index, value in counts.items()}


def featurize(text: str, settings: FeatureSettings) -> dict[int, float]:
    """Sparse feature vector: n-gram buckets, then the structural features after them."""
    features = hashed_ngrams(text, settings)
    for offset, value in enumerate(structural(text)):
        if value:
            features[settings.buckets + offset] = value
    return features
