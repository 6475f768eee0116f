"""Features of a prompt: hashed word n-grams plus cheap structural signals (the router and the
moderation classifier learn from them).

Pure and fast: the request path scores every ``auto`` request, within a 200 us budget at p99
(bench/router_decision.py). So the text is tokenized once, long prompts are read as their head
and tail, each distinct word is hashed once (CRC32, memoized) and bigram buckets are mixed from
the two word hashes with integer arithmetic; the structural signals use substring scans and the
token list rather than regular expressions over the whole text. CRC32 is the same in every
process and release (Python's ``hash`` is salted per process), so a saved router scores the
same everywhere.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from itertools import repeat

import numpy as np

_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
_LINE_END_CODE = re.compile(r"[;{][ \t]*$", re.M)
_DIGIT_OPERATOR = re.compile(r"\d\s*[-+*/^=<>]\s*\d")
_NO_DIGITS = str.maketrans("", "", "0123456789")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SENTENCE_ENDS = (". ", "? ", "! ", ".\n", "?\n", "!\n")
_CODE_MARKS = ("```", "def ", "class ", "return", "#include", "select ", "=>", "function", "import ", "</")
_MATH_MARKS = ("\\frac", "\\sum", "\\int", "solve", "equation", "prove", "integral", "derivative", "theorem")
_CONSTRAINT_WORDS = frozenset({"must", "exactly", "only", "without", "format", "never", "always"})
_CONSTRAINT_PHRASES = ("do not", "step by step", "no more than", "don't", "at least", "at most")
_WORD_HASHES: dict[str, int] = {}
_WORD_HASHES_LIMIT = 20_000  # ~2 MB: the common vocabulary; rare words are simply hashed again
_MIX = 0x9E3779B1

# "numbers" and "sentences" stand for the number of quantities and steps in a word problem, the usual
# proxy for how many reasoning steps it takes (where small models fall behind first).
STRUCTURAL = ("log_chars", "log_words", "questions", "constraints", "code", "math", "digits", "non_ascii", "lines",
              "numbers", "sentences")


@dataclass(frozen=True)
class FeatureSettings:
    buckets: int = 1 << 18  # hashed n-gram space
    ngram_max: int = 2
    # Long prompts are read as their first head_chars and last tail_chars: the decision must take
    # microseconds whatever the prompt's size, and the instruction is usually at one of the ends.
    head_chars: int = 1536
    tail_chars: int = 512

    @property
    def size(self) -> int:
        return self.buckets + len(STRUCTURAL)


def clipped(text: str, settings: FeatureSettings) -> str:
    if len(text) <= settings.head_chars + settings.tail_chars:
        return text
    return text[: settings.head_chars] + "\n" + text[-settings.tail_chars :]


def tokens_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def structural(text: str, tokens: list[str], full_length: int) -> list[float]:
    lower = text.lower()
    chars = max(len(text), 1)
    constraints = sum(map(_CONSTRAINT_WORDS.__contains__, tokens)) + sum(map(lower.count, _CONSTRAINT_PHRASES))
    digits = len(text) - len(text.translate(_NO_DIGITS))
    # The regular expressions run only where they can match (the same values, a third of the time).
    code = any(mark in lower for mark in _CODE_MARKS) or (
        (";" in text or "{" in text) and bool(_LINE_END_CODE.search(text)))
    math_like = any(mark in lower for mark in _MATH_MARKS) or (digits > 1 and bool(_DIGIT_OPERATOR.search(text)))
    return [
        math.log1p(full_length) / 10,
        math.log1p(len(text.split())) / 8,
        min(text.count("?"), 10) / 5,
        min(constraints, 10) / 5,
        1.0 if code else 0.0,
        1.0 if math_like else 0.0,
        digits / chars * 5,
        0.0 if text.isascii() else (len(text.encode()) - len(text)) / chars,
        min(text.count("\n"), 50) / 25,
        math.log1p(len(_NUMBER.findall(text)) if digits else 0) / 3,
        math.log1p(sum(map(text.count, _SENTENCE_ENDS))) / 3,
    ]


def _word_hash(word: str) -> int:
    value = _WORD_HASHES.get(word)
    if value is None:
        value = zlib.crc32(word.encode())
        if len(_WORD_HASHES) < _WORD_HASHES_LIMIT and not word.isdigit():  # numbers never end: not memoized
            _WORD_HASHES[word] = value
    return value


def word_hashes(tokens: list[str]) -> np.ndarray:
    """Each token's CRC32. Memoized words are read in one C-level pass (half the time of a Python
    call per token); only the others, usually a few, are hashed one by one."""
    hashes = np.fromiter(map(_WORD_HASHES.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))
    for index in np.flatnonzero(hashes < 0).tolist():
        hashes[index] = _word_hash(tokens[index])
    return hashes.view(np.uint64)


def ngram_buckets(tokens: list[str], settings: FeatureSettings) -> np.ndarray:
    """The bucket of every word 1..n-gram (with repeats), computed on whole arrays at once."""
    hashes = word_hashes(tokens)
    parts = [hashes]
    mixed = hashes
    for n in range(2, settings.ngram_max + 1):
        mixed = ((mixed[:-1] * np.uint64(_MIX)) ^ hashes[n - 1 :]) & np.uint64(0xFFFFFFFF)
        parts.append(mixed)
    return np.concatenate(parts) % np.uint64(settings.buckets)


def ngram_counts(tokens: list[str], settings: FeatureSettings) -> tuple[np.ndarray, np.ndarray]:
    """Distinct buckets and their L2-normalized counts."""
    buckets, counts = np.unique(ngram_buckets(tokens, settings), return_counts=True)
    values = counts.astype(np.float64)
    norm = math.sqrt(float(values @ values)) or 1.0
    return buckets.astype(np.int64), values / norm


def hashed_ngrams(tokens: list[str], settings: FeatureSettings) -> dict[int, float]:
    """Counts of word 1..n-grams, hashed into buckets, L2-normalized (as a sparse dict)."""
    buckets, values = ngram_counts(tokens, settings)
    return dict(zip(buckets.tolist(), values.tolist(), strict=True))


def featurize(text: str, settings: FeatureSettings) -> dict[int, float]:
    """Sparse feature vector: n-gram buckets, then the structural features after them."""
    kept = clipped(text, settings)
    tokens = tokens_of(kept)
    features = hashed_ngrams(tokens, settings)
    for offset, value in enumerate(structural(kept, tokens, len(text))):
        if value:
            features[settings.buckets + offset] = value
    return features
