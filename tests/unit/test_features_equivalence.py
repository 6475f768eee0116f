"""The fast paths of wire.features give exactly what the plain definitions give.

The router's artifacts store weights for these values: a tokenizer or a structural signal that
drifted by one token or one count would silently change every saved router's scores. The plain
definitions (regular expressions over the whole text) are kept here as the specification."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.router_real_data import DEFAULT_DIR
from router.embedding import word_vectors
from router.features import _tokens_and_last_block
from wire.features import structural, tokens_of

_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_DIGIT_OPERATOR = re.compile(r"\d\s*[-+*/^=<>]\s*\d")
_LINE_END_CODE = re.compile(r"[;{][ \t]*$", re.M)
_NO_DIGITS = str.maketrans("", "", "0123456789")
_SENTENCE_ENDS = (". ", "? ", "! ", ".\n", "?\n", "!\n")
_CODE_MARKS = ("```", "def ", "class ", "return", "#include", "select ", "=>", "function", "import ", "</")
_MATH_MARKS = ("\\frac", "\\sum", "\\int", "solve", "equation", "prove", "integral", "derivative", "theorem")
_CONSTRAINT_WORDS = frozenset({"must", "exactly", "only", "without", "format", "never", "always"})
_CONSTRAINT_PHRASES = ("do not", "step by step", "no more than", "don't", "at least", "at most")
ROUTER_DATA = Path(os.environ.get("TOLLGATE_ROUTER_DATA", DEFAULT_DIR))

# Digits, separators, operators, every kind of ASCII space, letters, punctuation, and characters
# that are not ASCII: one whose lower case is ASCII (Kelvin), a digit and two spaces that are not.
ALPHABET = "0123456789.,-+*/^=<> \t\n\r\x0b\x0c\x1c\x1faZz?!;{}()'\"`#_\\" + "é\u212a\u0663\u00a0\u3000東"


def plain_tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def plain_structural(text: str, full_length: int) -> list[float]:
    """The structural signals as first written: regular expressions and scans over the whole text."""
    tokens = plain_tokens(text)
    lower = text.lower()
    chars = max(len(text), 1)
    constraints = sum(token in _CONSTRAINT_WORDS for token in tokens) + sum(lower.count(p) for p in _CONSTRAINT_PHRASES)
    digits = len(text) - len(text.translate(_NO_DIGITS))
    code = any(mark in lower for mark in _CODE_MARKS) or bool(_LINE_END_CODE.search(text))
    # Numbers and the operator test look only where there are ASCII digits (so a prompt with
    # non-ASCII digits alone has none): as trained since the first artifacts.
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
        math.log1p(sum(text.count(end) for end in _SENTENCE_ENDS)) / 3,
    ]


def check(text: str) -> None:
    tokens = tokens_of(text)
    assert tokens == plain_tokens(text), text
    assert structural(text, tokens, len(text) + 7) == plain_structural(text, len(text) + 7), text
    start = text.rfind("\n\n")
    last = len(plain_tokens(text[start:])) if start >= 0 else len(plain_tokens(text))
    assert _tokens_and_last_block(text) == (plain_tokens(text), last), text


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=60))
def test_tokens_and_numbers_match_the_plain_definitions(text: str) -> None:
    check(text)


def test_edge_cases_of_numbers_and_tokens() -> None:
    for text in ("", "1", "12", ".5", "1.", "1.2.3", "1..2", "1.,5", "x.5", ",5", "a1,000.25b", "3 - 4", "3-x4",
                 "2\x1c+\x1f2", "q?\n\nA: 1\n\n", "\n\nx", "v1.2 and 7", "KELVIN \u212a 5", "\u0663\u0664 + 1", "don't stop!!", "a\tb\x0bc"):
        check(text)


def test_every_real_prompt_of_the_router_data() -> None:
    """Prompts of six real collections (templated, few-shot, chat, code, non-ASCII)."""
    files = sorted(ROUTER_DATA.glob("*.jsonl"))
    if not files:
        pytest.skip(f"real router data not found: {ROUTER_DATA} (../shared/router-data beside the project, "
                    "or set TOLLGATE_ROUTER_DATA)")
    for path in files:
        for line in path.read_text().splitlines():
            check(json.loads(line)["prompt"])


def plain_direction(vectors: np.ndarray) -> np.ndarray:
    total = vectors.sum(0)
    norm = float(np.sqrt(total @ total))
    return total / norm if norm else total


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["the", "cache", "prefix", "zqxj", "solve", "\n\n", "?", "42"]), max_size=80))
def test_prompt_vectors_match_the_plain_definition(words: list[str]) -> None:
    """The whole prompt's and the last block's directions, bit for bit."""
    table = word_vectors()
    tokens, last = _tokens_and_last_block(" ".join(words))
    rows = table.word_rows(tokens)
    plain = np.concatenate((plain_direction(table.vectors[rows]), plain_direction(table.vectors[rows[len(rows) - last:]])))
    assert np.array_equal(table.prompt_vectors(rows, last), plain)
