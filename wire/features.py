"""Features of a prompt: hashed word n-grams plus cheap structural signals (the router and the
moderation classifier learn from them).

Pure and fast: the request path scores every ``auto`` request, within a 200 us budget at p99
(bench/router_decision.py). So the text is tokenized once, long prompts are read as their head
and tail, each distinct word is hashed once (CRC32, memoized) and bigram buckets are mixed from
the two word hashes with integer arithmetic; the structural signals use substring scans, the
token list and byte counts rather than regular expressions over the whole text. The fast paths
give exactly the values of the plain definitions (regular expressions, kept as the specification
in tests/unit/test_features_equivalence.py): saved routers were trained on those values. CRC32 is
the same in every process and release (Python's ``hash`` is salted per process), so a saved router
scores the same everywhere.
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
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WHITESPACE = "".join(chr(c) for c in range(128) if chr(c).isspace())  # what \s and str.split() take in ASCII
_PUNCTUATION_ONLY = str.maketrans("", "", "abcdefghijklmnopqrstuvwxyz0123456789" + _WHITESPACE)


def _byte_classes(classes: dict[str, str]) -> bytes:
    """A bytes.translate table: each listed ASCII character to its class, every other byte to "x"."""
    table = bytearray(b"x" * 256)
    for characters, kind in classes.items():
        for character in characters:
            table[ord(character)] = ord(kind)
    return bytes(table)


# The UTF-8 bytes of a prompt as character classes: a digit "1", "." and "," themselves, "e" for "?"
# and "!", " " for a space or a line break, "t" for the other ASCII spaces, "o" for an operator.
_CHARACTER_CLASSES = _byte_classes({"0123456789": "1", ".": ".", ",": ",", "?!": "e", " \n": " ",
                                    _WHITESPACE.replace(" ", "").replace("\n", ""): "t", "-+*/^=<>": "o"})
_NUMBER_CLASSES = _byte_classes({"1": "1", ".,": "2"})  # digit, separator, other ("x")
_SPACE_CLASSES = _byte_classes({" t": " "})  # space or not
_CLASS_DIGIT_OPERATOR = re.compile(rb"1[ t]*o[ t]*1")
_CODE_MARKS = ("```", "def ", "class ", "return", "#include", "select ", "=>", "function", "import ", "</")
_MATH_MARKS = ("\\frac", "\\sum", "\\int", "solve", "equation", "prove", "integral", "derivative", "theorem")
_CONSTRAINT_WORDS = frozenset({"must", "exactly", "only", "without", "format", "never", "always"})
_CONSTRAINT_PHRASES = ("do not", "step by step", "no more than", "don't", "at least", "at most")
_WORD_HASHES_LIMIT = 20_000  # ~2 MB: the common vocabulary; rare words are simply hashed again
# Numbers are not memoized as they come (they never end), but the short ones are in every other
# prompt (quantities, options, list items, the parts of 1,200 or 3.5): their 1,110 hashes are there
# from the start.
_SHORT_NUMBERS = [str(n) for n in range(1000)] + [f"0{n}" for n in range(100)] + [f"00{n}" for n in range(10)]
_WORD_HASHES: dict[str, int] = {number: zlib.crc32(number.encode()) for number in _SHORT_NUMBERS}
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
    """Runs of ASCII letters and digits, and every other character that is not a space on its own.

    ASCII text (nearly every prompt) is split by ``str.split`` after spacing out the few kinds of
    punctuation it holds: a fifth to a half of the regular expression's time on real prompts, whose
    cost is per token. Other text takes the expression; both give the same tokens (tested)."""
    lower = text.lower()
    if not lower.isascii():
        return _WORD.findall(lower)
    for mark in set(lower.translate(_PUNCTUATION_ONLY)):
        lower = lower.replace(mark, f" {mark} ")
    return lower.split()


def structural(text: str, tokens: list[str], full_length: int) -> list[float]:
    lower = text.lower()
    chars = max(len(text), 1)
    constraints = sum(map(_CONSTRAINT_WORDS.__contains__, tokens)) + sum(map(lower.count, _CONSTRAINT_PHRASES))
    counts = _counts(text)
    # The regular expressions run only where they can match (the same values, a third of the time).
    code = any(mark in lower for mark in _CODE_MARKS) or (
        (";" in text or "{" in text) and bool(_LINE_END_CODE.search(text)))
    math_like = any(mark in lower for mark in _MATH_MARKS) or counts.digit_operator
    return [
        math.log1p(full_length) / 10,
        math.log1p(counts.words) / 8,
        min(text.count("?"), 10) / 5,
        min(constraints, 10) / 5,
        1.0 if code else 0.0,
        1.0 if math_like else 0.0,
        counts.digits / chars * 5,
        (counts.utf8_bytes - len(text)) / chars,
        min(text.count("\n"), 50) / 25,
        math.log1p(counts.numbers) / 3,
        math.log1p(counts.sentences) / 3,
    ]


@dataclass(frozen=True, slots=True)
class _Counts:
    words: int  # as str.split() counts them
    digits: int  # ASCII digits
    numbers: int  # runs such as 3, 1,000 or 2.5 (_NUMBER)
    sentences: int  # ".", "?" or "!" before a space or a line break
    digit_operator: bool  # a digit, an operator and a digit in a row (_DIGIT_OPERATOR)
    utf8_bytes: int  # the text's length in UTF-8 (beyond its characters: how far it is not ASCII)


def _counts(text: str) -> _Counts:
    """What the structural signals count in a prompt, from one translation of its UTF-8 bytes into
    character classes: each count is then a ``bytes.count`` of a two- or three-byte pattern.

    Why: scanning 2,000 characters with ``_NUMBER`` and ``_DIGIT_OPERATOR``, splitting them into
    words and counting six sentence ends took 35-40 us on real prompts; this takes a third of it.
    A number starts at a digit after a character that is neither a digit nor a separator, or after a
    separator that does not itself follow a digit; a word starts at a non-space after a space. The
    digits and sentence ends are ASCII, so their counts hold for any text; for text that is not ASCII
    the numbers, words and the operator test are taken as defined (non-ASCII digits and spaces count
    there). Both give the same values (tests/unit/test_features_equivalence.py)."""
    classes = text.encode().translate(_CHARACTER_CLASSES)
    digits = classes.count(b"1")
    sentences = classes.count(b". ") + classes.count(b"e ")
    if not text.isascii():
        numbers = len(_NUMBER.findall(text)) if digits else 0
        operator = digits > 1 and bool(_DIGIT_OPERATOR.search(text))
        return _Counts(len(text.split()), digits, numbers, sentences, operator, len(classes))
    spaces = classes.translate(_SPACE_CLASSES)
    words = spaces.count(b" x") + spaces.startswith(b"x")
    if not digits:
        return _Counts(words, 0, 0, sentences, False, len(classes))
    runs = classes.translate(_NUMBER_CLASSES)
    numbers = sum(map(runs.count, (b"x1", b"x21", b"221"))) + runs.startswith(b"1") + runs.startswith(b"21")
    operator = digits > 1 and bool(_CLASS_DIGIT_OPERATOR.search(classes))
    return _Counts(words, digits, numbers, sentences, operator, len(classes))


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
    """Distinct buckets and their L2-normalized counts. (Buckets are below 2^22: as 32-bit integers
    they sort in half the time of 64-bit ones, and sorting is most of ``np.unique``.)"""
    buckets, counts = np.unique(ngram_buckets(tokens, settings).astype(np.int32), return_counts=True)
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
